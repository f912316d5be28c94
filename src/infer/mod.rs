//! Using a trained model: opening it from its job folder ([`trained`]), predicting the classes
//! of image files ([`predict`]) and measuring it on another data set ([`evaluate`]).

pub mod evaluate;
pub mod images;
pub mod predict;
pub mod trained;

//! The identity of a loaded data set: per split, every image's name, label(s), file size and a
//! digest of its decoded pixels, plus the class list and image shape. Its hash is the
//! `data_hash` recorded with every job; [`Inventory::diff`] names what changed between two loads.

use std::collections::HashMap;
use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::image_set::ImageSet;
use super::source::LoadReport;

/// Version of the inventory file format (`data-inventory.json`).
pub const INVENTORY_VERSION: u32 = 1;

/// How many names each kind of change lists before `…`.
const LISTED: usize = 5;

/// Everything that identifies the data an experiment trains on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub version: u32,
    pub classes: Vec<String>,
    /// `[channels, height, width]` of the decoded images.
    pub shape: [usize; 3],
    /// `train` (everything the training pool is cut from), then `test` when it is its own source.
    pub splits: Vec<SplitInventory>,
}

/// One split's images in load order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInventory {
    pub split: String,
    pub items: Vec<Item>,
}

/// One image. Serialised as a row `[name, [labels], size, "digest"]`, with the group appended
/// when the data has groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ItemRow", into = "ItemRow")]
pub struct Item {
    /// Path relative to the image-folder root or the manifest's folder; `<file>[<index>]` for IDX.
    pub name: String,
    /// Class names (one for single-label data; any number for multilabel data).
    pub labels: Vec<String>,
    /// File size in bytes (for IDX, the image's byte count).
    pub size: u64,
    /// The first 8 bytes of the SHA-256 of the decoded pixels (C×H×W u8), little-endian.
    pub digest: u64,
    /// The image's group (CSV manifests with a `group` column).
    pub group: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum ItemRow {
    Plain(String, Vec<String>, u64, String),
    Grouped(String, Vec<String>, u64, String, String),
}

impl From<Item> for ItemRow {
    fn from(i: Item) -> Self {
        let digest = format!("{:016x}", i.digest);
        match i.group {
            None => ItemRow::Plain(i.name, i.labels, i.size, digest),
            Some(g) => ItemRow::Grouped(i.name, i.labels, i.size, digest, g),
        }
    }
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Self {
        let (name, labels, size, digest, group) = match r {
            ItemRow::Plain(n, l, s, d) => (n, l, s, d, None),
            ItemRow::Grouped(n, l, s, d, g) => (n, l, s, d, Some(g)),
        };
        Item {
            name,
            labels,
            size,
            // a damaged digest reads as 0: the image shows as modified, nothing worse
            digest: u64::from_str_radix(&digest, 16).unwrap_or(0),
            group,
        }
    }
}

/// The 64-bit digest of one image's decoded pixels.
pub fn pixel_digest(pixels: &[u8]) -> u64 {
    let h = Sha256::digest(pixels);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

impl SplitInventory {
    /// The inventory of one loaded split: `report` names the images of `set` in its order.
    pub fn of(split: &str, set: &ImageSet, report: &LoadReport) -> SplitInventory {
        let n = set.image_len().max(1);
        let digests: Vec<u64> = set.pixels.par_chunks(n).map(pixel_digest).collect();
        let k = set.classes.len();
        let class = |c: usize| {
            set.classes
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("#{c}"))
        };
        let items = (0..set.len())
            .map(|i| Item {
                name: report
                    .names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("#{i}")),
                labels: match &set.label_sets {
                    Some(sets) => (0..k)
                        .filter(|&c| sets[i * k + c] != 0)
                        .map(class)
                        .collect(),
                    None => vec![class(set.labels[i] as usize)],
                },
                size: report.sizes.get(i).copied().unwrap_or(0),
                digest: digests.get(i).copied().unwrap_or(0),
                group: set.groups.as_ref().and_then(|g| g.get(i).cloned()),
            })
            .collect();
        SplitInventory {
            split: split.to_string(),
            items,
        }
    }
}

fn put(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

impl Inventory {
    /// The inventory of the training source (`train`) and, when the test set is its own
    /// source, the test set; classes and shape are the training set's.
    pub fn new(
        train: (&ImageSet, &LoadReport),
        test: Option<(&ImageSet, &LoadReport)>,
    ) -> Inventory {
        let (set, _) = train;
        let mut splits = vec![SplitInventory::of("train", train.0, train.1)];
        if let Some((t, r)) = test {
            splits.push(SplitInventory::of("test", t, r));
        }
        Inventory {
            version: INVENTORY_VERSION,
            classes: set.classes.clone(),
            shape: [set.channels, set.height, set.width],
            splits,
        }
    }

    /// Hex SHA-256 over everything in the inventory: the `data_hash` recorded with every job.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"assay-inventory-v1");
        for v in self.shape {
            h.update((v as u64).to_le_bytes());
        }
        h.update((self.classes.len() as u64).to_le_bytes());
        for c in &self.classes {
            put(&mut h, c);
        }
        h.update((self.splits.len() as u64).to_le_bytes());
        for s in &self.splits {
            put(&mut h, &s.split);
            h.update((s.items.len() as u64).to_le_bytes());
            for i in &s.items {
                put(&mut h, &i.name);
                h.update((i.labels.len() as u64).to_le_bytes());
                for l in &i.labels {
                    put(&mut h, l);
                }
                h.update(i.size.to_le_bytes());
                h.update(i.digest.to_le_bytes());
                match &i.group {
                    Some(g) => {
                        h.update([1]);
                        put(&mut h, g);
                    }
                    None => h.update([0]),
                }
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Number of images over all splits.
    pub fn len(&self) -> usize {
        self.splits.iter().map(|s| s.items.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What changed from `old` to `new`: class list, image shape, then images added, removed,
    /// relabelled, modified and regrouped. Images are matched by split and name (the k-th
    /// occurrence of a name with the k-th); an image that left one class folder for another with
    /// the same content counts as relabelled, not as removed and added. Names are listed as
    /// `<split>/<name>`, added, relabelled, modified and regrouped ones in the new load order,
    /// removed ones in the old.
    pub fn diff(old: &Inventory, new: &Inventory) -> DataChanges {
        let mut changes = Vec::new();
        if old.classes != new.classes {
            changes.push(Change::Classes {
                old: old.classes.clone(),
                new: new.classes.clone(),
            });
        }
        if old.shape != new.shape {
            changes.push(Change::Shape {
                old: old.shape,
                new: new.shape,
            });
        }
        let old_items = keyed(old);
        let mut old_index: HashMap<(&str, &str, usize), &Item> = old_items
            .iter()
            .map(|(split, k, item)| ((*split, item.name.as_str(), *k), *item))
            .collect();
        let new_items = keyed(new);
        let (mut added, mut relabelled, mut modified, mut regrouped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut added_items: Vec<(&str, &Item)> = Vec::new();
        for (split, k, item) in &new_items {
            let q = format!("{split}/{}", item.name);
            match old_index.remove(&(*split, item.name.as_str(), *k)) {
                None => added_items.push((split, item)),
                Some(o) => {
                    if o.labels != item.labels {
                        relabelled.push(Relabel {
                            old_name: q.clone(),
                            name: q.clone(),
                            old: o.labels.clone(),
                            new: item.labels.clone(),
                        });
                    }
                    if o.digest != item.digest || o.size != item.size {
                        modified.push(q.clone());
                    }
                    if o.group != item.group {
                        regrouped.push(Regroup {
                            name: q,
                            old: o.group.clone(),
                            new: item.group.clone(),
                        });
                    }
                }
            }
        }
        // what is left of the old images was removed, unless it moved to another class
        let mut removed_items: Vec<(&str, &Item)> = old_items
            .iter()
            .filter(|(split, k, item)| old_index.contains_key(&(*split, item.name.as_str(), *k)))
            .map(|(split, _, item)| (*split, *item))
            .collect();
        let mut gone: HashMap<(&str, u64, u64), Vec<usize>> = HashMap::new();
        for (i, (split, item)) in removed_items.iter().enumerate() {
            gone.entry((split, item.digest, item.size))
                .or_default()
                .push(i);
        }
        let mut moved = vec![false; removed_items.len()];
        for (split, item) in added_items {
            let q = format!("{split}/{}", item.name);
            let partner = gone
                .get_mut(&(split, item.digest, item.size))
                .and_then(|v| {
                    let pos = v
                        .iter()
                        .position(|&i| removed_items[i].1.labels != item.labels)?;
                    Some(v.remove(pos))
                });
            match partner {
                Some(i) => {
                    moved[i] = true;
                    let o = removed_items[i].1;
                    relabelled.push(Relabel {
                        old_name: format!("{}/{}", removed_items[i].0, o.name),
                        name: q,
                        old: o.labels.clone(),
                        new: item.labels.clone(),
                    });
                }
                None => added.push(q),
            }
        }
        let mut i = 0;
        removed_items.retain(|_| {
            i += 1;
            !moved[i - 1]
        });
        let removed: Vec<String> = removed_items
            .iter()
            .map(|(split, item)| format!("{split}/{}", item.name))
            .collect();
        if !added.is_empty() {
            changes.push(Change::Added(added));
        }
        if !removed.is_empty() {
            changes.push(Change::Removed(removed));
        }
        if !relabelled.is_empty() {
            changes.push(Change::Relabelled(relabelled));
        }
        if !modified.is_empty() {
            changes.push(Change::Modified(modified));
        }
        if !regrouped.is_empty() {
            changes.push(Change::Regrouped(regrouped));
        }
        if changes.is_empty() && old.hash() != new.hash() {
            changes.push(Change::Reordered);
        }
        DataChanges { changes }
    }
}

/// Every image with its split and its occurrence number among images of the same name.
fn keyed(inv: &Inventory) -> Vec<(&str, usize, &Item)> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out = Vec::with_capacity(inv.len());
    for s in &inv.splits {
        for item in &s.items {
            let k = seen.entry((&s.split, &item.name)).or_insert(0);
            out.push((s.split.as_str(), *k, item));
            *k += 1;
        }
    }
    out
}

/// An image whose labels changed (`old_name` differs from `name` when it moved between class
/// folders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relabel {
    pub old_name: String,
    pub name: String,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

/// An image whose group changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regroup {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One kind of change between two inventories; names are `<split>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Classes {
        old: Vec<String>,
        new: Vec<String>,
    },
    Shape {
        old: [usize; 3],
        new: [usize; 3],
    },
    Added(Vec<String>),
    Removed(Vec<String>),
    Relabelled(Vec<Relabel>),
    /// Same name, different content or file size.
    Modified(Vec<String>),
    Regrouped(Vec<Regroup>),
    /// The same images in another order (e.g. manifest rows swapped).
    Reordered,
}

/// Everything [`Inventory::diff`] found; empty when the data is the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataChanges {
    pub changes: Vec<Change>,
}

impl DataChanges {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// One line per kind of change (see [`Change`]'s `Display`).
    pub fn lines(&self) -> Vec<String> {
        self.changes.iter().map(Change::to_string).collect()
    }
}

impl fmt::Display for DataChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

fn labels(l: &[String]) -> String {
    if l.is_empty() {
        "(none)".into()
    } else {
        l.join(";")
    }
}

fn group(g: &Option<String>) -> &str {
    g.as_deref().unwrap_or("(none)")
}

/// `n image(s) <what> (first, second, …)`.
fn count_line(f: &mut fmt::Formatter<'_>, what: &str, names: &[String]) -> fmt::Result {
    let n = names.len();
    let shown: Vec<&str> = names.iter().take(LISTED).map(String::as_str).collect();
    let more = if n > LISTED { ", …" } else { "" };
    write!(
        f,
        "{n} image{} {what} ({}{more})",
        if n == 1 { "" } else { "s" },
        shown.join(", ")
    )
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Classes { old, new } => write!(
                f,
                "class list changed: [{}] → [{}]",
                old.join(", "),
                new.join(", ")
            ),
            Change::Shape { old, new } => write!(
                f,
                "image shape changed: {}×{}×{} → {}×{}×{}",
                old[0], old[1], old[2], new[0], new[1], new[2]
            ),
            Change::Added(names) => count_line(f, "added", names),
            Change::Removed(names) => count_line(f, "removed", names),
            Change::Modified(names) => count_line(f, "modified", names),
            Change::Relabelled(r) => {
                let names: Vec<String> = r
                    .iter()
                    .map(|r| {
                        let name = if r.old_name == r.name {
                            r.name.clone()
                        } else {
                            format!("{} → {}", r.old_name, r.name)
                        };
                        format!("{name}: {} → {}", labels(&r.old), labels(&r.new))
                    })
                    .collect();
                count_line(f, "relabelled", &names)
            }
            Change::Regrouped(r) => {
                let names: Vec<String> = r
                    .iter()
                    .map(|r| format!("{}: {} → {}", r.name, group(&r.old), group(&r.new)))
                    .collect();
                count_line(f, "moved to another group", &names)
            }
            Change::Reordered => f.write_str("the same images in another order"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, label: &str, size: u64, digest: u64) -> Item {
        Item {
            name: name.into(),
            labels: vec![label.into()],
            size,
            digest,
            group: None,
        }
    }

    fn inv(train: Vec<Item>, test: Vec<Item>) -> Inventory {
        let mut splits = vec![SplitInventory {
            split: "train".into(),
            items: train,
        }];
        if !test.is_empty() {
            splits.push(SplitInventory {
                split: "test".into(),
                items: test,
            });
        }
        Inventory {
            version: INVENTORY_VERSION,
            classes: vec!["cat".into(), "dog".into()],
            shape: [1, 4, 4],
            splits,
        }
    }

    fn base() -> Inventory {
        inv(
            vec![
                item("a.png", "cat", 10, 1),
                item("b.png", "dog", 11, 2),
                item("c.png", "cat", 12, 3),
            ],
            vec![item("t.png", "dog", 13, 4)],
        )
    }

    #[test]
    fn same_data_no_changes_same_hash() {
        let d = Inventory::diff(&base(), &base());
        assert!(d.is_empty(), "{d}");
        assert_eq!(d.to_string(), "");
        assert_eq!(base().hash(), base().hash());
        assert_eq!(base().hash().len(), 64);
    }

    #[test]
    fn added_removed_relabelled_modified() {
        let mut new = base();
        let train = &mut new.splits[0].items;
        train[0].labels = vec!["dog".into()]; // a.png relabelled
        train[1].digest = 99; // b.png modified (content)
        train[2].size = 7; // c.png modified (size only)
        train.push(item("d.png", "dog", 14, 5)); // added
        new.splits[1].items.clear(); // t.png removed
        new.splits[1].items.push(item("u.png", "cat", 15, 6));
        let d = Inventory::diff(&base(), &new);
        assert_eq!(
            d.changes,
            vec![
                Change::Added(vec!["train/d.png".into(), "test/u.png".into()]),
                Change::Removed(vec!["test/t.png".into()]),
                Change::Relabelled(vec![Relabel {
                    old_name: "train/a.png".into(),
                    name: "train/a.png".into(),
                    old: vec!["cat".into()],
                    new: vec!["dog".into()],
                }]),
                Change::Modified(vec!["train/b.png".into(), "train/c.png".into()]),
            ]
        );
        assert_eq!(
            d.to_string(),
            "2 images added (train/d.png, test/u.png)\n\
             1 image removed (test/t.png)\n\
             1 image relabelled (train/a.png: cat → dog)\n\
             2 images modified (train/b.png, train/c.png)"
        );
        assert_ne!(base().hash(), new.hash());
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let h = base().hash();
        let mut x = base();
        x.splits[0].items[0].name = "z.png".into();
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.splits[0].items[0].size += 1;
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.splits[0].items[0].digest += 1;
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.splits[0].items[0].labels = vec!["dog".into()];
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.splits[0].items[0].group = Some("p1".into());
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.shape = [3, 4, 4];
        assert_ne!(x.hash(), h);
        let mut x = base();
        x.splits[0].items.swap(0, 1);
        assert_ne!(x.hash(), h);
        assert_eq!(
            Inventory::diff(&base(), &x).to_string(),
            "the same images in another order"
        );
    }

    #[test]
    fn classes_shape_and_long_lists() {
        let mut new = base();
        new.classes.push("eel".into());
        new.shape = [3, 4, 4];
        for i in 0..7 {
            new.splits[0]
                .items
                .push(item(&format!("n{i}.png"), "eel", 1, 100 + i));
        }
        let d = Inventory::diff(&base(), &new);
        assert_eq!(
            d.lines(),
            vec![
                "class list changed: [cat, dog] → [cat, dog, eel]".to_string(),
                "image shape changed: 1×4×4 → 3×4×4".to_string(),
                "7 images added (train/n0.png, train/n1.png, train/n2.png, train/n3.png, \
                 train/n4.png, …)"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_move_between_class_folders_is_a_relabel() {
        let old = inv(
            vec![
                item("cat/a.png", "cat", 10, 1),
                item("cat/b.png", "cat", 11, 2),
            ],
            vec![],
        );
        let new = inv(
            vec![
                item("cat/b.png", "cat", 11, 2),
                item("dog/a.png", "dog", 10, 1),
                item("dog/c.png", "dog", 10, 1), // a second copy: added
            ],
            vec![],
        );
        let d = Inventory::diff(&old, &new);
        assert_eq!(
            d.lines(),
            vec![
                "1 image added (train/dog/c.png)".to_string(),
                "1 image relabelled (train/cat/a.png → train/dog/a.png: cat → dog)".to_string(),
            ]
        );
        // a rename within the class is a removal and an addition
        let renamed = inv(
            vec![
                item("cat/z.png", "cat", 10, 1),
                item("cat/b.png", "cat", 11, 2),
            ],
            vec![],
        );
        assert_eq!(
            Inventory::diff(&old, &renamed).lines(),
            vec![
                "1 image added (train/cat/z.png)".to_string(),
                "1 image removed (train/cat/a.png)".to_string(),
            ]
        );
    }

    #[test]
    fn duplicate_names_pair_in_order_and_groups() {
        let mut a = item("x.png", "cat", 1, 1);
        a.group = Some("p1".into());
        let mut b = a.clone();
        b.labels = vec![];
        let old = inv(vec![a.clone(), a.clone()], vec![]);
        let mut a2 = a.clone();
        a2.group = Some("p2".into());
        let new = inv(vec![a.clone(), b, a2], vec![]);
        assert_eq!(
            Inventory::diff(&old, &new).lines(),
            vec![
                "1 image added (train/x.png)".to_string(),
                "1 image relabelled (train/x.png: cat → (none))".to_string(),
            ]
        );
        let new = inv(
            vec![a.clone(), {
                let mut c = a.clone();
                c.group = Some("p2".into());
                c
            }],
            vec![],
        );
        assert_eq!(
            Inventory::diff(&old, &new).to_string(),
            "1 image moved to another group (train/x.png: p1 → p2)"
        );
    }

    #[test]
    fn serialises_as_compact_rows() {
        let mut x = base();
        x.splits[0].items[0].group = Some("p1".into());
        x.splits[0].items[1].labels = vec!["cat".into(), "dog".into()];
        x.splits[0].items[2].digest = u64::MAX;
        let json = serde_json::to_string(&x).unwrap();
        assert!(
            json.contains(r#"["a.png",["cat"],10,"0000000000000001","p1"]"#),
            "{json}"
        );
        assert!(
            json.contains(r#"["b.png",["cat","dog"],11,"0000000000000002"]"#),
            "{json}"
        );
        let back: Inventory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, x);
        assert_eq!(back.hash(), x.hash());
    }

    #[test]
    fn of_a_loaded_set() {
        let set = ImageSet {
            channels: 1,
            height: 1,
            width: 2,
            pixels: vec![1, 2, 3, 4],
            labels: vec![1, 0],
            classes: vec!["a".into(), "b".into(), "c".into()],
            groups: None,
            label_sets: Some(vec![0, 1, 1, 0, 0, 0]),
        };
        let report = LoadReport {
            decoded: 2,
            names: vec!["x.png".into(), "y.png".into()],
            sizes: vec![70, 71],
            ..LoadReport::default()
        };
        let s = SplitInventory::of("train", &set, &report);
        assert_eq!(s.items[0].labels, vec!["b".to_string(), "c".to_string()]);
        assert!(s.items[1].labels.is_empty());
        assert_eq!(s.items[1].size, 71);
        assert_eq!(s.items[0].digest, pixel_digest(&[1, 2]));
        assert_ne!(s.items[0].digest, s.items[1].digest);
        let inv = Inventory::new((&set, &report), None);
        assert_eq!(inv.shape, [1, 1, 2]);
        assert_eq!(inv.len(), 2);
    }
}

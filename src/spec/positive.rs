//! The binary task's positive class: `data.positive_class`, or the one class whose name is an
//! obvious positive; the one rule that spec validation (classes in the spec) and data loading
//! (classes from the data) both apply.

/// Class names taken as the positive class by themselves (compared case-insensitively, trimmed).
pub const OBVIOUS_POSITIVES: &[&str] = &["1", "true", "yes", "y", "positive", "pos"];

/// Why the positive class cannot be determined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PositiveClassError {
    /// No `positive_class`, and not exactly one of the two classes is an obvious positive.
    #[error(
        "{}\n   = help: {}",
        ambiguous_message(classes),
        ambiguous_help(classes)
    )]
    Ambiguous { classes: Vec<String> },
    /// `positive_class` names no class.
    #[error("data.positive_class \"{given}\" is not one of the classes [{}]", classes.join(", "))]
    Unknown { given: String, classes: Vec<String> },
}

/// Whether `name` is one of [`OBVIOUS_POSITIVES`].
pub fn is_obvious_positive(name: &str) -> bool {
    let name = name.trim();
    OBVIOUS_POSITIVES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// The index of the positive class among the two `classes`: `given` (the spec's
/// `data.positive_class`) if set, else the class whose name is an obvious positive when exactly
/// one of them is. Never a silent default.
pub fn positive_index(
    classes: &[String],
    given: Option<&str>,
) -> Result<usize, PositiveClassError> {
    if let Some(p) = given {
        return classes
            .iter()
            .position(|c| c == p)
            .ok_or_else(|| PositiveClassError::Unknown {
                given: p.to_string(),
                classes: classes.to_vec(),
            });
    }
    let obvious: Vec<usize> = (0..classes.len())
        .filter(|&i| is_obvious_positive(&classes[i]))
        .collect();
    match obvious.as_slice() {
        [i] if classes.len() == 2 => Ok(*i),
        _ => Err(PositiveClassError::Ambiguous {
            classes: classes.to_vec(),
        }),
    }
}

/// The first line of [`PositiveClassError::Ambiguous`] (also the spec error's message).
pub fn ambiguous_message(classes: &[String]) -> String {
    let quoted: Vec<String> = classes.iter().map(|c| format!("\"{c}\"")).collect();
    let obvious = classes.iter().filter(|c| is_obvious_positive(c)).count();
    let which = if obvious == 0 {
        "neither is an obvious positive"
    } else {
        "both are obvious positives"
    };
    format!(
        "task \"binary\" needs data.positive_class: the classes are [{}] and {which} ({})",
        quoted.join(", "),
        OBVIOUS_POSITIVES.join(", ")
    )
}

/// The help of [`PositiveClassError::Ambiguous`] (also the spec error's help).
pub fn ambiguous_help(classes: &[String]) -> String {
    let options: Vec<String> = classes
        .iter()
        .map(|c| format!("positive_class = \"{c}\""))
        .collect();
    format!(
        "say which class precision, recall, F1 and PR-AUC are about: add {} to [data]",
        options.join(" or ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_obvious_positive_is_picked_by_itself() {
        assert_eq!(positive_index(&v(&["0", "1"]), None), Ok(1));
        assert_eq!(positive_index(&v(&["no", "yes"]), None), Ok(1));
        assert_eq!(positive_index(&v(&["True", "False"]), None), Ok(0));
        assert_eq!(positive_index(&v(&["POS", "neg"]), None), Ok(0));
        assert_eq!(positive_index(&v(&["other", "positive"]), None), Ok(1));
        assert_eq!(positive_index(&v(&["n", "y"]), None), Ok(1));
    }

    #[test]
    fn otherwise_positive_class_is_required() {
        for classes in [["defective", "functional"], ["yes", "true"], ["cat", "dog"]] {
            let classes = v(&classes);
            assert_eq!(
                positive_index(&classes, None),
                Err(PositiveClassError::Ambiguous {
                    classes: classes.clone()
                })
            );
        }
        let e = positive_index(&v(&["defective", "functional"]), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "task \"binary\" needs data.positive_class: the classes are [\"defective\", \"functional\"] and neither is an obvious positive (1, true, yes, y, positive, pos)\n   = help: say which class precision, recall, F1 and PR-AUC are about: add positive_class = \"defective\" or positive_class = \"functional\" to [data]"
        );
        assert!(positive_index(&v(&["yes", "1"]), None)
            .unwrap_err()
            .to_string()
            .contains("and both are obvious positives ("));
    }

    #[test]
    fn the_given_class_wins() {
        assert_eq!(positive_index(&v(&["0", "1"]), Some("0")), Ok(0));
        assert_eq!(
            positive_index(&v(&["defective", "functional"]), Some("defective")),
            Ok(0)
        );
        assert!(matches!(
            positive_index(&v(&["a", "b"]), Some("c")),
            Err(PositiveClassError::Unknown { .. })
        ));
    }
}

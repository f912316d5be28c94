//! Words for a POSIX shell: what assay prints for copying and writes into batch scripts.

/// `s` as one shell word: as it is when it holds only letters, digits and `_./-=:,@%+`, else
/// single-quoted.
pub fn word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(super::word("runs/a-b_c.1"), "runs/a-b_c.1");
        assert_eq!(super::word("--set=x:1"), "--set=x:1");
        assert_eq!(super::word("a b"), "'a b'");
        assert_eq!(super::word("it's"), "'it'\\''s'");
        assert_eq!(super::word(""), "''");
        assert_eq!(super::word("$HOME"), "'$HOME'");
    }
}

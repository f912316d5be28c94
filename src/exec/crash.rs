//! Why a worker died, from what it wrote to stderr: the panic message with its location, an
//! allocation failure, or its last error line — not the hint lines that follow them.

/// The most a reason quotes of the worker's own words.
const MAX_REASON: usize = 500;

/// The reason in `stderr` (one attempt's output), if it says anything.
pub fn reason(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains(" panicked at ")) {
        let (_, place) = lines[i].split_once(" panicked at ")?;
        let place = place.trim().trim_end_matches(':');
        let message: Vec<&str> = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("note:") && !l.starts_with("stack backtrace:"))
            .filter(|l| !l.is_empty())
            .collect();
        let message = if message.is_empty() {
            String::new()
        } else {
            format!(": {}", message.join(" "))
        };
        return Some(clip(format!("panicked at {place}{message}")));
    }
    if let Some(l) = lines
        .iter()
        .rev()
        .find(|l| l.contains("memory allocation of") && l.contains("failed"))
    {
        return Some(clip(format!("out of memory: {}", l.trim())));
    }
    if let Some(l) = lines.iter().rev().find(|l| l.starts_with("error:")) {
        return Some(clip(l.trim_start_matches("error:").trim().to_string()));
    }
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with("note:"))
        .map(|l| clip(l.to_string()))
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn a_panic_is_its_message_and_place_not_the_backtrace_hint() {
        let stderr = "some progress\n\nthread 'main' (4242) panicked at src/model/ops/im2col.rs:42:17:\nattempt to multiply with overflow\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            reason(stderr).unwrap(),
            "panicked at src/model/ops/im2col.rs:42:17: attempt to multiply with overflow"
        );
        let with_backtrace = "thread '<unnamed>' (7) panicked at library/alloc/src/raw_vec.rs:25:5:\ncapacity overflow\nstack backtrace:\n   0: foo\nnote: Some details are omitted\n";
        assert_eq!(
            reason(with_backtrace).unwrap(),
            "panicked at library/alloc/src/raw_vec.rs:25:5: capacity overflow"
        );
    }

    #[test]
    fn allocation_failures_errors_and_plain_lines() {
        assert_eq!(
            reason("memory allocation of 68719476736 bytes failed\n").unwrap(),
            "out of memory: memory allocation of 68719476736 bytes failed"
        );
        assert_eq!(
            reason("error: cannot write the checkpoint x: No space left on device (os error 28)\n")
                .unwrap(),
            "cannot write the checkpoint x: No space left on device (os error 28)"
        );
        assert_eq!(reason("hello\nnote: a hint\n").unwrap(), "hello");
        assert_eq!(reason("\n\n"), None);
        let long = "x".repeat(2000);
        assert_eq!(reason(&long).unwrap().chars().count(), 501);
    }
}

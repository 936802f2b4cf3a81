//! Line splitting shared by the readers.

/// Splits a file into lines at `\n`, `\r\n` and `\r` (Python's universal newlines, which is
/// how jupytext opens a script); the line terminators are dropped, and a final terminator
/// does not start an extra empty line.
pub(super) fn file_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            None => {
                lines.push(rest);
                break;
            }
            Some(pos) => {
                lines.push(&rest[..pos]);
                let terminator_len = if rest[pos..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[pos + terminator_len..];
            }
        }
    }
    lines
}

/// Splits at the line boundaries of Python's `str.splitlines`, without a trailing empty line.
pub(super) fn python_splitlines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let boundary = rest.char_indices().find(|(_, ch)| {
            matches!(
                ch,
                '\n' | '\r'
                    | '\u{0b}'
                    | '\u{0c}'
                    | '\u{1c}'
                    | '\u{1d}'
                    | '\u{1e}'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        });
        match boundary {
            None => Some(std::mem::take(&mut rest)),
            Some((pos, ch)) => {
                let line = &rest[..pos];
                let mut next = pos + ch.len_utf8();
                if ch == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
        }
    })
}

//! The options on a percent cell marker line (`# %% Title [markdown] key="value"`), parsed as
//! jupytext does (`cell_metadata.text_to_metadata` with titles allowed, and
//! `DoublePercentScriptCellReader.options_to_metadata`).
//!
//! - Text before the first `=` or `{` is the title, less the key of the first `key=value`
//!   and less trailing words that start with `.`; `[markdown]`, `[md]` or `[raw]` in the title
//!   sets the cell type; leading `%` signs (Spyder sub-cells) become `cell_depth`.
//! - `key=value` pairs: each value is JSON, or else a Python literal (`'single quoted'`,
//!   `True`, `None`, tuples); `key=bare_word` is not a valid value, so, as in jupytext, the
//!   whole text ends up as `incorrectly_encoded_metadata`. A bare identifier at the end (such as
//!   `.class`) is a key whose value is `null`.
//! - A JSON object (`# %% Title {"tags": ["a"]}`) when `{` comes before any `=`.

use serde_json::{Map, Number, Value};

/// The metadata and cell type of a marker line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MarkerOptions {
    /// Cell metadata, including `title` and `cell_depth` when present (jupytext keeps them
    /// there too). `cell_type` is not in it.
    pub(super) metadata: Map<String, Value>,
    /// `markdown` or `raw` from `[markdown]`, `[md]` or `[raw]`; or a `cell_type` key.
    pub(super) cell_type: Option<Value>,
}

/// Parses what follows `%%` on a marker line.
pub(super) fn marker_options(options: &str) -> MarkerOptions {
    let (title, mut metadata) = text_to_metadata(options);
    let mut title = title.to_owned();
    for cell_type in ["markdown", "raw", "md"] {
        let code = format!("[{cell_type}]");
        if title.contains(&code) {
            let replaced = title.replace(&code, "");
            title = String::from(replaced.trim());
            if cell_type == "md" {
                metadata.insert("cell_type".to_owned(), Value::from("markdown"));
                metadata.insert("region_name".to_owned(), Value::from("md"));
            } else {
                metadata.insert("cell_type".to_owned(), Value::from(cell_type));
            }
            break;
        }
    }
    let depth = title.chars().take_while(|&ch| ch == '%').count();
    if depth > 0 {
        metadata.insert("cell_depth".to_owned(), Value::from(depth));
        title.drain(..depth);
        title = String::from(title.trim());
    }
    if !title.is_empty() {
        metadata.insert("title".to_owned(), Value::from(title));
    }
    let cell_type = metadata.shift_remove("cell_type");
    MarkerOptions {
        metadata,
        cell_type,
    }
}

/// `text_to_metadata(text, allow_title=True)`: the title and the metadata.
fn text_to_metadata(text: &str) -> (&str, Map<String, Value>) {
    let text = text.trim();
    let first_curly_bracket = text.find('{');
    let first_equal_sign = text.find('=');
    let key_value_line = match (first_curly_bracket, first_equal_sign) {
        (None, _) => true,
        (Some(curly), Some(equal)) => equal < curly,
        (Some(_), None) => false,
    };
    if !key_value_line {
        let curly = first_curly_bracket.unwrap_or(0);
        let metadata = match relax_json_loads(&text[curly..]) {
            Some(Value::Object(metadata)) => metadata,
            _ => incorrectly_encoded_metadata(&text[curly..]),
        };
        return (text[..curly].trim(), metadata);
    }
    let mut words: Vec<&str> = match first_equal_sign {
        Some(equal) => {
            let mut words: Vec<&str> = text[..equal].split(' ').collect();
            while words.last().is_some_and(|word| word.is_empty()) {
                words.pop();
            }
            words.pop();
            words
        }
        None => text.split(' ').collect(),
    };
    while words
        .last()
        .is_some_and(|word| word.trim().is_empty() || word.starts_with('.'))
    {
        words.pop();
    }
    // The words are a prefix of `text` split at single spaces, so joining them back gives
    // that prefix's length.
    let title_len =
        words.iter().map(|word| word.len()).sum::<usize>() + words.len().saturating_sub(1);
    let title = &text[..title_len];
    (title, parse_key_equal_value(&text[title_len..], 0))
}

/// `{"incorrectly_encoded_metadata": text}`, jupytext's record of options it cannot parse.
fn incorrectly_encoded_metadata(text: &str) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("incorrectly_encoded_metadata".to_owned(), Value::from(text));
    metadata
}

/// `^[a-zA-Z_\.]+[a-zA-Z0-9_\.]*$`
fn is_identifier(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_' || ch == '.')
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
}

/// `[a-zA-Z0-9_\.-]`
fn is_key_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-')
}

/// `^[a-zA-Z0-9_\.-]+$`
fn is_valid_metadata_key(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_key_char)
}

/// Deepest recursion of [`parse_key_equal_value`] (one level per option); past it, the rest of
/// the line is `incorrectly_encoded_metadata`. jupytext itself would stop at Python's
/// recursion limit.
const MAX_OPTIONS: usize = 256;

/// Parses `key1=value1 key2=value2`, from the right (jupytext's `parse_key_equal_value`).
/// `depth` counts the options already parsed to the right of `text`.
fn parse_key_equal_value(text: &str, depth: usize) -> Map<String, Value> {
    let text = text.trim();
    if text.is_empty() {
        return Map::new();
    }
    if depth >= MAX_OPTIONS {
        return incorrectly_encoded_metadata(text);
    }
    let last_word_start = text.rfind(' ').map_or(0, |space| space + 1);
    if !text.starts_with("--") && is_identifier(&text[last_word_start..]) {
        let mut metadata = Map::new();
        metadata.insert(text[last_word_start..].to_owned(), Value::Null);
        if last_word_start > 1 {
            metadata.extend(parse_key_equal_value(
                &text[..last_word_start - 1],
                depth + 1,
            ));
        }
        return metadata;
    }
    let mut search_end = text.len();
    loop {
        let Some(equal_sign) = text[..search_end].rfind('=') else {
            return incorrectly_encoded_metadata(text);
        };
        search_end = equal_sign;
        let before = text[..equal_sign].trim_end();
        // The key is the last space-separated word of `before`: a character outside the key
        // alphabet rejects it without scanning further (this keeps `=====` linear).
        if before
            .chars()
            .rev()
            .take_while(|&ch| ch != ' ')
            .any(|ch| !ch.is_whitespace() && !is_key_char(ch))
        {
            continue;
        }
        let prev_whitespace = before.rfind(' ');
        let key_start = prev_whitespace.map_or(0, |space| space + 1);
        let key = text[key_start..equal_sign].trim();
        if !is_valid_metadata_key(key) {
            continue;
        }
        let Some(value) = relax_json_loads(&text[equal_sign + 1..]) else {
            continue;
        };
        let mut metadata = match prev_whitespace {
            Some(space) if space > 0 => parse_key_equal_value(&text[..space], depth + 1),
            _ => Map::new(),
        };
        metadata.insert(key.to_owned(), value);
        return metadata;
    }
}

/// Parses JSON, or else a Python literal (`ast.literal_eval`) that has a JSON equivalent.
fn relax_json_loads(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    let mut parser = LiteralParser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let value = parser.expression()?;
    parser.skip_whitespace();
    (parser.pos == parser.chars.len()).then_some(value)
}

/// Deepest nesting of lists, tuples and dicts the literal parser accepts.
const MAX_LITERAL_DEPTH: usize = 64;

/// A recursive-descent parser for the Python literals `ast.literal_eval` accepts, limited to
/// those that convert to JSON: strings (with `r`/`u` prefixes and implicit concatenation),
/// integers, floats, `True`, `False`, `None`, lists, tuples, and dicts with string, integer,
/// boolean or `None` keys. Bytes, sets, complex numbers and `\N{...}` escapes are refused.
struct LiteralParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl LiteralParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self
            .peek()
            .is_some_and(|ch| matches!(ch, ' ' | '\t' | '\n' | '\r' | '\x0c'))
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, expected: char) -> bool {
        self.skip_whitespace();
        if self.peek() == Some(expected) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expression(&mut self) -> Option<Value> {
        self.skip_whitespace();
        let ch = self.peek()?;
        match ch {
            '[' => self.sequence(']'),
            '(' => self.sequence(')'),
            '{' => self.dict(),
            '+' | '-' => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_LITERAL_DEPTH {
                    return None;
                }
                self.skip_whitespace();
                let value = self.expression()?;
                self.depth -= 1;
                let Value::Number(number) = value else {
                    return None;
                };
                if ch == '+' {
                    return Some(Value::Number(number));
                }
                negate(&number)
            }
            '0'..='9' | '.' => self.number(),
            _ if ch.is_alphabetic() || ch == '_' => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|ch| ch.is_alphanumeric() || ch == '_')
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    _ if self.peek().is_some_and(|ch| ch == '\'' || ch == '"') => {
                        let raw = match word.to_ascii_lowercase().as_str() {
                            "r" => true,
                            "u" => false,
                            _ => return None,
                        };
                        self.strings(raw)
                    }
                    _ => None,
                }
            }
            '\'' | '"' => self.strings(false),
            _ => None,
        }
    }

    /// One string literal, then any adjacent ones (`'a' 'b'` is `'ab'`).
    fn strings(&mut self, raw: bool) -> Option<Value> {
        let mut text = self.string(raw)?;
        loop {
            self.skip_whitespace();
            let raw = match self.peek() {
                Some('\'' | '"') => false,
                Some('r' | 'R' | 'u' | 'U')
                    if self
                        .chars
                        .get(self.pos + 1)
                        .is_some_and(|&ch| ch == '\'' || ch == '"') =>
                {
                    let raw = matches!(self.peek(), Some('r' | 'R'));
                    self.pos += 1;
                    raw
                }
                _ => return Some(Value::String(text)),
            };
            text.push_str(&self.string(raw)?);
        }
    }

    fn string(&mut self, raw: bool) -> Option<String> {
        let quote = self.peek()?;
        let triple = self.chars.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]);
        self.pos += if triple { 3 } else { 1 };
        let mut text = String::new();
        loop {
            let ch = self.peek()?;
            if ch == quote {
                if !triple {
                    self.pos += 1;
                    return Some(text);
                }
                if self.chars.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]) {
                    self.pos += 3;
                    return Some(text);
                }
            }
            if ch == '\n' && !triple {
                return None;
            }
            self.pos += 1;
            if ch != '\\' {
                text.push(ch);
                continue;
            }
            let escaped = self.peek()?;
            self.pos += 1;
            if raw {
                text.push('\\');
                text.push(escaped);
                continue;
            }
            match escaped {
                '\n' => {}
                '\\' | '\'' | '"' => text.push(escaped),
                'a' => text.push('\x07'),
                'b' => text.push('\x08'),
                'f' => text.push('\x0c'),
                'n' => text.push('\n'),
                'r' => text.push('\r'),
                't' => text.push('\t'),
                'v' => text.push('\x0b'),
                '0'..='7' => {
                    let mut code = escaped.to_digit(8)?;
                    for _ in 0..2 {
                        match self.peek().and_then(|ch| ch.to_digit(8)) {
                            Some(digit) => {
                                code = code * 8 + digit;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    text.push(char::from_u32(code)?);
                }
                'x' | 'u' | 'U' => {
                    let len = match escaped {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let digits: String = self.chars.get(self.pos..self.pos + len)?.iter().collect();
                    if !digits.chars().all(|ch| ch.is_ascii_hexdigit()) {
                        return None;
                    }
                    self.pos += len;
                    text.push(char::from_u32(u32::from_str_radix(&digits, 16).ok()?)?);
                }
                'N' => return None,
                other => {
                    text.push('\\');
                    text.push(other);
                }
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        let hexadecimal = self.chars.get(start) == Some(&'0')
            && self
                .chars
                .get(start + 1)
                .is_some_and(|ch| matches!(ch, 'x' | 'X'));
        while let Some(ch) = self.peek() {
            let after_exponent = self.pos > start
                && !hexadecimal
                && matches!(self.chars.get(self.pos - 1), Some('e' | 'E'));
            let in_number = ch.is_ascii_alphanumeric()
                || matches!(ch, '.' | '_')
                || (matches!(ch, '+' | '-') && after_exponent);
            if !in_number {
                break;
            }
            self.pos += 1;
        }
        let token: String = self.chars[start..self.pos].iter().collect();
        if token.starts_with('_') || token.ends_with('_') || token.contains("__") {
            return None;
        }
        let token = token.replace('_', "");
        let lower = token.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = lower.strip_prefix(prefix) {
                return u64::from_str_radix(digits, radix).ok().map(Value::from);
            }
        }
        if lower.chars().all(|ch| ch.is_ascii_digit()) {
            // Python 3 refuses leading zeros in decimal integers other than zero itself.
            if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|ch| ch != '0') {
                return None;
            }
            return match lower.parse::<u64>() {
                Ok(integer) => Some(Value::from(integer)),
                Err(_) => lower
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number),
            };
        }
        if lower.ends_with('j') || lower.contains("inf") || lower.contains("nan") {
            return None;
        }
        let float: f64 = lower.parse().ok()?;
        Number::from_f64(float).map(Value::Number)
    }

    fn sequence(&mut self, close: char) -> Option<Value> {
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_LITERAL_DEPTH {
            return None;
        }
        let mut items = Vec::new();
        let mut saw_comma = false;
        loop {
            if self.eat(close) {
                break;
            }
            items.push(self.expression()?);
            if self.eat(',') {
                saw_comma = true;
                continue;
            }
            if self.eat(close) {
                break;
            }
            return None;
        }
        // `(1)` is not a tuple but a parenthesized value.
        self.depth -= 1;
        if close == ')' && items.len() == 1 && !saw_comma {
            return items.pop();
        }
        Some(Value::Array(items))
    }

    fn dict(&mut self) -> Option<Value> {
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_LITERAL_DEPTH {
            return None;
        }
        let mut map = Map::new();
        loop {
            if self.eat('}') {
                break;
            }
            let key = match self.expression()? {
                Value::String(key) => key,
                Value::Null => "null".to_owned(),
                Value::Bool(flag) => flag.to_string(),
                Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
                _ => return None,
            };
            if !self.eat(':') {
                // A set, which JSON cannot hold.
                return None;
            }
            let value = self.expression()?;
            map.insert(key, value);
            if self.eat(',') {
                continue;
            }
            if self.eat('}') {
                break;
            }
            return None;
        }
        self.depth -= 1;
        Some(Value::Object(map))
    }
}

/// `-number`, or `None` when it does not fit.
fn negate(number: &Number) -> Option<Value> {
    if let Some(integer) = number.as_u64() {
        if integer == 0 {
            return Some(Value::from(0));
        }
        if let Some(negated) = 0i64.checked_sub_unsigned(integer) {
            return Some(Value::from(negated));
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "Python has big integers; JSON floats"
        )]
        return Number::from_f64(-(integer as f64)).map(Value::Number);
    }
    if let Some(integer) = number.as_i64() {
        return integer.checked_neg().map(Value::from);
    }
    number
        .as_f64()
        .and_then(|float| Number::from_f64(-float))
        .map(Value::Number)
}

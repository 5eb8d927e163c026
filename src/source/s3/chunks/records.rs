//! Where a unit of an NDJSON object ends. Usually at its line's end; but Kinesis Data Firehose
//! writes its records one after another with no delimiter by default (`{…}{…}{…}`), so a line
//! that holds JSON objects (or arrays) back to back is cut between them: each is a unit of its
//! own. Only there: anything else after a complete object keeps the whole line one unit (as
//! before, refused whole), and a line break always ends a unit, so a line cut short never
//! swallows the lines after it.

/// A scan through one unit, byte by byte.
#[derive(Debug, Default)]
pub(super) struct Record {
    state: State,
    depth: u64,
    in_string: bool,
    escaped: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Only whitespace so far.
    #[default]
    Start,
    /// Inside an object or array that began the unit.
    Value,
    /// That value closed; only whitespace since.
    Closed,
    /// Anything else: the unit runs to the line's end.
    Line,
}

/// What a byte does to the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// It belongs to the unit.
    Take,
    /// The unit ended before this byte, which starts the next one on the same line.
    EndBefore,
    /// A line break: the unit ends, the byte is consumed.
    EndOfLine,
}

impl Record {
    pub(super) fn step(&mut self, b: u8) -> Step {
        if b == b'\n' {
            return Step::EndOfLine;
        }
        match self.state {
            State::Start => match b {
                b'{' | b'[' => {
                    self.state = State::Value;
                    self.depth = 1;
                }
                b if b.is_ascii_whitespace() => {}
                _ => self.state = State::Line,
            },
            State::Value => self.inside(b),
            State::Closed => match b {
                b'{' | b'[' => return Step::EndBefore,
                b if b.is_ascii_whitespace() => {}
                _ => self.state = State::Line,
            },
            State::Line => {}
        }
        Step::Take
    }

    fn inside(&mut self, b: u8) {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth = self.depth.saturating_add(1),
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    self.state = State::Closed;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The units of `text` as the scan cuts them (whitespace at their ends trimmed, as the
    /// reader does).
    fn units(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut record = Record::default();
        let mut unit = Vec::new();
        for &b in text.as_bytes() {
            match record.step(b) {
                Step::Take => unit.push(b),
                Step::EndOfLine => {
                    out.push(String::from_utf8(std::mem::take(&mut unit)).unwrap());
                    record = Record::default();
                }
                Step::EndBefore => {
                    out.push(String::from_utf8(std::mem::take(&mut unit)).unwrap());
                    record = Record::default();
                    assert_eq!(record.step(b), Step::Take);
                    unit.push(b);
                }
            }
        }
        if !unit.is_empty() {
            out.push(String::from_utf8(unit).unwrap());
        }
        out.iter().map(|u| u.trim().to_string()).collect()
    }

    #[test]
    fn lines_are_units_and_objects_back_to_back_are_cut_apart() {
        assert_eq!(units("{\"a\":1}\n{\"b\":2}\n"), ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(
            units("{\"a\":\"}{\"}{\"b\":[1,{}]} \t{\"c\":3}"),
            ["{\"a\":\"}{\"}", "{\"b\":[1,{}]}", "{\"c\":3}"]
        );
        assert_eq!(
            units("{\"a\":1}\r\n\n{\"b\":2}"),
            ["{\"a\":1}", "", "{\"b\":2}"]
        );
    }

    #[test]
    fn anything_else_keeps_the_line_whole() {
        // Something after a complete object: one unit, refused whole as before.
        assert_eq!(
            units("{\"a\":1} x {\"b\":2}\n{}"),
            ["{\"a\":1} x {\"b\":2}", "{}"]
        );
        // A line cut short does not swallow the next line.
        assert_eq!(
            units("{\"a\":\"cut\n{\"b\":2}"),
            ["{\"a\":\"cut", "{\"b\":2}"]
        );
        // Scalars and a pretty-printed object's lines are lines.
        assert_eq!(
            units("42 {\"a\":1}\n{\n\"a\": 1\n}"),
            ["42 {\"a\":1}", "{", "\"a\": 1", "}"]
        );
        // A stray closing brace: the line stays whole.
        assert_eq!(units("{\"a\":1}}\n"), ["{\"a\":1}}"]);
    }
}

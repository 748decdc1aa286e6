//! Builds values token by token: QEMU's recursive-descent grammar (qobject/json-parser.c) turned
//! into an explicit stack, so that a message arriving in pieces is never re-parsed.
//!
//! Errors come out in token order with QEMU's texts, which is the order QEMU's parser finds them
//! in (it stops at the first one). The depth of the stack is bounded by the caller's nesting
//! limit, checked before every opening token reaches the builder.

use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::{JsonError, decode};

/// One token, with the bytes of a scalar token borrowed from the lexer's buffers.
pub(super) enum Token<'a> {
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Colon,
    Comma,
    /// Contents between the quotes; [`decode::string`] may take the allocation.
    Str {
        raw: &'a mut Vec<u8>,
        quote: u8,
        escaped: bool,
        non_ascii: bool,
    },
    Number {
        text: &'a [u8],
        float: bool,
    },
    Keyword(&'a [u8]),
}

/// What an open object expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectState {
    /// After `{`: a key or `}`.
    First,
    /// After `,`: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`: a value.
    Value,
    /// After a member: `,` or `}`.
    Separator,
}

/// What an open array expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// After `[`: a value or `]`.
    First,
    /// After `,`: a value.
    Value,
    /// After an element: `,` or `]`.
    Separator,
}

#[derive(Debug)]
enum Frame {
    Object { map: Map<String, Value>, key: Option<String>, state: ObjectState },
    Array { items: Vec<Value>, state: ArrayState },
}

/// The partially built message.
#[derive(Debug, Default)]
pub(super) struct Builder {
    stack: Vec<Frame>,
}

impl Builder {
    /// Drops the partial message.
    pub(super) fn clear(&mut self) {
        self.stack.clear();
        if self.stack.capacity() > 64 {
            self.stack.shrink_to(64);
        }
    }

    /// Feeds one token; returns the top-level value it completes, if any.
    #[inline]
    pub(super) fn feed(&mut self, token: Token<'_>) -> Result<Option<Value>, JsonError> {
        match self.stack.last_mut() {
            None => self.value(token),
            Some(Frame::Object { state, .. }) => match (*state, token) {
                (ObjectState::First, Token::RBrace) => self.close(),
                (ObjectState::First | ObjectState::Key | ObjectState::Value, token) => self.value(token),
                (ObjectState::Colon, Token::Colon) => {
                    *state = ObjectState::Value;
                    Ok(None)
                }
                (ObjectState::Colon, _) => Err(JsonError::MissingColon),
                (ObjectState::Separator, Token::Comma) => {
                    *state = ObjectState::Key;
                    Ok(None)
                }
                (ObjectState::Separator, Token::RBrace) => self.close(),
                (ObjectState::Separator, _) => Err(JsonError::ExpectedDictSeparator),
            },
            Some(Frame::Array { state, .. }) => match (*state, token) {
                (ArrayState::First, Token::RBracket) => self.close(),
                (ArrayState::First | ArrayState::Value, token) => self.value(token),
                (ArrayState::Separator, Token::Comma) => {
                    *state = ArrayState::Value;
                    Ok(None)
                }
                (ArrayState::Separator, Token::RBracket) => self.close(),
                (ArrayState::Separator, _) => Err(JsonError::ExpectedListSeparator),
            },
        }
    }

    /// A token where a value (or an object key, which QEMU parses as a value) must start.
    #[inline]
    fn value(&mut self, token: Token<'_>) -> Result<Option<Value>, JsonError> {
        let v = match token {
            Token::LBrace => {
                self.stack.push(Frame::Object { map: Map::new(), key: None, state: ObjectState::First });
                return Ok(None);
            }
            Token::LBracket => {
                self.stack.push(Frame::Array { items: Vec::new(), state: ArrayState::First });
                return Ok(None);
            }
            Token::RBrace | Token::RBracket | Token::Colon | Token::Comma => {
                return Err(JsonError::ExpectingValue);
            }
            Token::Str { raw, quote, escaped, non_ascii } => {
                Value::String(decode::string(raw, quote, escaped, non_ascii)?)
            }
            Token::Number { text, float } => decode::number(text, float)?,
            Token::Keyword(text) => decode::keyword(text)?,
        };
        self.deliver(v)
    }

    /// Pops the innermost container and hands it to its parent.
    fn close(&mut self) -> Result<Option<Value>, JsonError> {
        let v = match self.stack.pop() {
            Some(Frame::Object { map, .. }) => Value::Object(map),
            Some(Frame::Array { items, .. }) => Value::Array(items),
            None => return Err(JsonError::ExpectingValue),
        };
        self.deliver(v)
    }

    /// Stores a finished value in its parent, or returns it when it is the whole message.
    #[inline]
    fn deliver(&mut self, v: Value) -> Result<Option<Value>, JsonError> {
        match self.stack.last_mut() {
            None => Ok(Some(v)),
            Some(Frame::Array { items, state }) => {
                items.push(v);
                *state = ArrayState::Separator;
                Ok(None)
            }
            Some(Frame::Object { map, key, state }) => match *state {
                ObjectState::First | ObjectState::Key => match v {
                    Value::String(k) => {
                        *key = Some(k);
                        *state = ObjectState::Colon;
                        Ok(None)
                    }
                    _ => Err(JsonError::KeyNotString),
                },
                ObjectState::Value => {
                    let Some(k) = key.take() else {
                        return Err(JsonError::ExpectingValue);
                    };
                    match map.entry(k) {
                        Entry::Vacant(slot) => {
                            slot.insert(v);
                        }
                        Entry::Occupied(_) => return Err(JsonError::DuplicateKey),
                    }
                    *state = ObjectState::Separator;
                    Ok(None)
                }
                // `feed` never lets a value reach an object that expects punctuation.
                ObjectState::Colon | ObjectState::Separator => Err(JsonError::ExpectingValue),
            },
        }
    }
}

//! A minimal, safe pickle reader for the CIFAR python releases: dicts, lists, tuples, ints,
//! strings/bytes and NumPy arrays rebuilt through `numpy.core.multiarray._reconstruct`.
//! Nothing is executed: globals are recorded by name, and only the NumPy array and dtype
//! reconstruction patterns are understood.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A global reference `module.name` (not imported, just named).
    Global(String),
    /// `callable(*args)` not otherwise understood, with its BUILD state if any.
    Object {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
    /// A NumPy dtype by name (e.g. "u1").
    Dtype(String),
    /// A uint8 NumPy array (C order).
    Array {
        bytes: Vec<u8>,
        shape: Vec<usize>,
    },
    Mark,
}

impl Value {
    /// Dict lookup by string or bytes key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                Value::Bytes(b) if b == key.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("truncated pickle")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    fn u64(&mut self) -> Result<usize, String> {
        let s = self.take(8)?;
        Ok(u64::from_le_bytes(s.try_into().map_err(|_| "truncated")?) as usize)
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("unterminated line")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(s)
    }
}

fn pop(stack: &mut Vec<Value>) -> Result<Value, String> {
    stack.pop().ok_or_else(|| "stack underflow".to_string())
}

fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>, String> {
    let at = stack
        .iter()
        .rposition(|v| *v == Value::Mark)
        .ok_or("missing MARK")?;
    let items = stack.split_off(at + 1);
    stack.pop();
    Ok(items)
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        // Python 2 `str` pickled as latin-1 text when re-encoded; SHORT_BINSTRING keeps bytes.
        Value::Str(s) => Some(s.chars().map(|c| c as u32 as u8).collect()),
        _ => None,
    }
}

fn reduce(callable: Value, args: Value) -> Value {
    match (&callable, &args) {
        (Value::Global(g), Value::Tuple(a)) if g.ends_with("dtype") => match a.first() {
            Some(Value::Str(name)) => Value::Dtype(name.clone()),
            Some(Value::Bytes(name)) => Value::Dtype(String::from_utf8_lossy(name).into_owned()),
            _ => Value::Object {
                callable: Box::new(callable),
                args: Box::new(args),
                state: None,
            },
        },
        _ => Value::Object {
            callable: Box::new(callable),
            args: Box::new(args),
            state: None,
        },
    }
}

/// BUILD: for a reconstructed ndarray, the state is (version, shape, dtype, fortran, data).
fn build(obj: Value, state: Value) -> Value {
    if let Value::Object { callable, .. } = &obj
        && matches!(callable.as_ref(), Value::Global(g) if g.ends_with("_reconstruct"))
        && let Value::Tuple(s) = &state
        && let (Some(Value::Tuple(shape)), Some(Value::Dtype(dtype)), Some(data)) =
            (s.get(1), s.get(2), s.get(4))
    {
        let shape: Option<Vec<usize>> = shape
            .iter()
            .map(|d| {
                if let Value::Int(i) = d {
                    Some(*i as usize)
                } else {
                    None
                }
            })
            .collect();
        if let (Some(shape), Some(bytes), true) = (shape, bytes_of(data), dtype == "u1") {
            return Value::Array { bytes, shape };
        }
    }
    match obj {
        Value::Dtype(d) => Value::Dtype(d),
        Value::Object { callable, args, .. } => Value::Object {
            callable,
            args,
            state: Some(Box::new(state)),
        },
        other => other,
    }
}

/// Parses a pickle stream (protocols 0–5 for the opcodes above).
pub fn load(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { b: bytes, at: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<usize, Value> = HashMap::new();
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?;
            } // PROTO
            0x95 => {
                r.u64()?;
            } // FRAME
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            b'J' => stack.push(Value::Int(r.u32()? as u32 as i32 as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let s = r.take(n)?;
                let mut v: i64 = 0;
                for (i, byte) in s.iter().enumerate().take(8) {
                    v |= (*byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && s[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                let s = r.take(8)?;
                stack.push(Value::Float(f64::from_be_bytes(
                    s.try_into().map_err(|_| "truncated")?,
                )));
            }
            b'U' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'T' => {
                let n = r.u32()?;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.u32()?;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x8e => {
                let n = r.u64()?;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'X' => {
                let n = r.u32()?;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(format!("{module}.{name}")));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(format!("{m}.{n}"))),
                    _ => return Err("bad STACK_GLOBAL".into()),
                }
            }
            b'q' => {
                let k = r.u8()? as usize;
                memo.insert(k, stack.last().cloned().ok_or("empty stack")?);
            }
            b'r' => {
                let k = r.u32()?;
                memo.insert(k, stack.last().cloned().ok_or("empty stack")?);
            }
            0x94 => {
                let k = memo.len();
                memo.insert(k, stack.last().cloned().ok_or("empty stack")?);
            }
            b'h' => {
                let k = r.u8()? as usize;
                stack.push(memo.get(&k).cloned().ok_or("unknown memo key")?);
            }
            b'j' => {
                let k = r.u32()?;
                stack.push(memo.get(&k).cloned().ok_or("unknown memo key")?);
            }
            0x85 => {
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a]));
            }
            0x86 => {
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a, b]));
            }
            0x87 => {
                let c = pop(&mut stack)?;
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a, b, c]));
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::List(items));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.push(v),
                    _ => return Err("APPEND without a list".into()),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err("APPENDS without a list".into()),
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => return Err("SETITEM without a dict".into()),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => {
                        for pair in items.chunks(2) {
                            if let [k, v] = pair {
                                d.push((k.clone(), v.clone()));
                            }
                        }
                    }
                    _ => return Err("SETITEMS without a dict".into()),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(reduce(callable, args));
            }
            0x81 => {
                let args = pop(&mut stack)?;
                let cls = pop(&mut stack)?;
                stack.push(Value::Object {
                    callable: Box::new(cls),
                    args: Box::new(args),
                    state: None,
                });
            }
            b'b' => {
                let state = pop(&mut stack)?;
                let obj = pop(&mut stack)?;
                stack.push(build(obj, state));
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    r.at - 1
                ));
            }
        }
    }
}

#[cfg(test)]
/// Writes the protocol-2 stream Python 2's cPickle produced for the CIFAR python release
/// (used by tests to build files in the official layout).
pub fn cifar_batch_pickle(label_key: &str, labels: &[u8], data: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0x80, 0x02, b'}', b'('];
    let short = |out: &mut Vec<u8>, s: &[u8]| {
        out.push(b'U');
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    };
    short(&mut out, label_key.as_bytes());
    out.extend_from_slice(b"](");
    for l in labels {
        out.extend_from_slice(&[b'K', *l]);
    }
    out.push(b'e');
    short(&mut out, b"data");
    out.extend_from_slice(
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01",
    );
    out.push(b'M');
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(b"M\x00\x0c\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"tbu.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cifar_layout_and_rejects_garbage() {
        let data: Vec<u8> = (0..2 * 3072).map(|i| (i % 251) as u8).collect();
        let v = load(&cifar_batch_pickle("labels", &[3, 7], &data, 2)).unwrap();
        assert_eq!(
            v.get("labels"),
            Some(&Value::List(vec![Value::Int(3), Value::Int(7)]))
        );
        match v.get("data") {
            Some(Value::Array { bytes, shape }) => {
                assert_eq!(shape, &vec![2, 3072]);
                assert_eq!(bytes, &data);
            }
            other => panic!("{other:?}"),
        }
        assert!(load(b"\x80\x02}q\x00").is_err());
        assert!(load(b"\xff").unwrap_err().contains("0xff"));
    }
}

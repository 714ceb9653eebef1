//! The `.npy` array format (NumPy's, versions 1–3): header parsing and writing.

use crate::error::{Error, Result};

/// Element type of an array, from its `descr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtype {
    /// 'u', 'i' (integers) or 'f', 'b' ... (reported, not read).
    pub kind: char,
    /// Bytes per element.
    pub size: usize,
    /// Elements are stored most significant byte first (`>` in `descr`).
    pub big_endian: bool,
}

/// A parsed `.npy` header: element type, layout, shape and where the data starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// Elements are stored in column-major (Fortran) order rather than C order.
    pub fortran_order: bool,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// Offset of the data from the start of the `.npy` bytes.
    pub data_offset: usize,
}

impl Header {
    /// Number of elements: the product of `shape` (1 for a scalar).
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }
}

fn bad(what: &str) -> Error {
    Error::Data(format!("not a valid .npy array: {what}"))
}

/// Parses the header at the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(len)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(|| bad("truncated header"))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Result<&str> {
        let k = format!("'{key}':");
        let at = text
            .find(&k)
            .ok_or_else(|| bad(&format!("header has no '{key}'")))?;
        Ok(text[at + k.len()..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| bad("bad 'descr'"))?;
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(|| bad("empty 'descr'"))?;
    let kind = chars.next().ok_or_else(|| bad("bad 'descr'"))?;
    let size: usize = chars
        .as_str()
        .parse()
        .map_err(|_| bad(&format!("unsupported dtype '{descr}'")))?;
    let dtype = Dtype {
        kind,
        size,
        big_endian: order == '>',
    };
    let fortran_order = field("fortran_order")?.starts_with("True");
    let shape_text = field("shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("bad 'shape'"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(&format!("bad shape entry '{s}'")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Header {
        dtype,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// Reads integer elements (any size, either byte order) as i64.
pub fn read_ints(data: &[u8], dtype: Dtype, count: usize) -> Result<Vec<i64>> {
    if !matches!(dtype.kind, 'i' | 'u') || !matches!(dtype.size, 1 | 2 | 4 | 8) {
        return Err(Error::Data(format!(
            "expected an integer array, got dtype {}{}",
            dtype.kind, dtype.size
        )));
    }
    if data.len() < count * dtype.size {
        return Err(Error::Data(format!(
            "truncated: {count} elements need {} bytes, found {}",
            count * dtype.size,
            data.len()
        )));
    }
    data[..count * dtype.size]
        .chunks_exact(dtype.size)
        .enumerate()
        .map(|(i, c)| {
            let mut b = [0u8; 8];
            if dtype.big_endian {
                b[8 - dtype.size..].copy_from_slice(c);
                b.reverse();
            } else {
                b[..dtype.size].copy_from_slice(c);
            }
            let raw = u64::from_le_bytes(b);
            if dtype.kind == 'i' {
                let shift = 64 - 8 * dtype.size;
                Ok(((raw << shift) as i64) >> shift)
            } else {
                // A uint64 past i64::MAX is not wrapped into a negative number (-1 would read
                // as "unlabelled").
                i64::try_from(raw).map_err(|_| {
                    Error::Data(format!(
                        "element {i} is {raw}, past the largest integer read ({})",
                        i64::MAX
                    ))
                })
            }
        })
        .collect()
}

/// A version-1 header for a C-order array, padded so the data starts on a 64-byte boundary.
pub fn write_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_ints() {
        let h = write_header("<i8", &[3]);
        assert_eq!(h.len() % 64, 0);
        let mut bytes = h.clone();
        for v in [-1i64, 7, 300] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let parsed = parse_header(&bytes).unwrap();
        assert_eq!(parsed.shape, vec![3]);
        assert_eq!(
            parsed.dtype,
            Dtype {
                kind: 'i',
                size: 8,
                big_endian: false
            }
        );
        assert_eq!(
            read_ints(&bytes[parsed.data_offset..], parsed.dtype, 3).unwrap(),
            vec![-1, 7, 300]
        );
        let big = read_ints(
            &[0xff, 0xfe],
            Dtype {
                kind: 'i',
                size: 2,
                big_endian: true,
            },
            1,
        )
        .unwrap();
        assert_eq!(big, vec![-2]);
        // A uint64 past i64::MAX is reported as stored, not wrapped to -1 ("unlabelled").
        let u8le = Dtype {
            kind: 'u',
            size: 8,
            big_endian: false,
        };
        let msg = read_ints(&u64::MAX.to_le_bytes(), u8le, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("18446744073709551615"), "{msg}");
        let h4 = parse_header(&write_header("|u1", &[2, 4, 4, 3])).unwrap();
        assert_eq!(h4.shape, vec![2, 4, 4, 3]);
        assert!(parse_header(b"\x93NUMPZ\x01\x00\x00\x00").is_err());
        assert!(
            read_ints(
                &[0; 4],
                Dtype {
                    kind: 'f',
                    size: 4,
                    big_endian: false
                },
                1
            )
            .is_err()
        );
    }
}

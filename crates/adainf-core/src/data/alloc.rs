//! Allocations sized by user input (image counts, copies): the size is computed with checked
//! arithmetic, compared with the memory the system says is available, and reserved fallibly,
//! so an impossible request ends in a message naming the bytes needed instead of an abort.

use crate::error::{Error, Result};

/// Bytes of memory available to this process, as the system reports it (`MemAvailable` in
/// /proc/meminfo); None where that is not known.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A byte count for people: "192.0 TB", "512 bytes".
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// `needed` bytes as a `usize` when they fit the address space and the available memory;
/// otherwise why not ("only 3.2 GB of memory is available").
pub fn fits_in_memory(needed: u128) -> std::result::Result<usize, String> {
    let Ok(bytes) = usize::try_from(needed) else {
        return Err("that does not fit this machine's address space".into());
    };
    match available_bytes() {
        Some(available) if needed > available as u128 => Err(format!(
            "only {} of memory is available",
            human_bytes(available as u128)
        )),
        _ => Ok(bytes),
    }
}

/// The bytes `count` items of `per_item` bytes take, checked against overflow and against
/// the available memory. `key` is the option that set `count`; `what` names the result.
pub fn bytes_for(key: &str, what: &str, count: usize, per_item: usize) -> Result<usize> {
    let needed = count as u128 * per_item as u128;
    fits_in_memory(needed).map_err(|why| {
        Error::config(
            key,
            format!(
                "{count} gives {what} of {} ({count} × {per_item} bytes), but {why}; ask for fewer",
                human_bytes(needed),
            ),
        )
    })
}

/// An empty vector with room for `count` items (see `bytes_for`), reserved fallibly.
pub fn vec_for<T>(key: &str, what: &str, count: usize) -> Result<Vec<T>> {
    let per = std::mem::size_of::<T>().max(1);
    let bytes = bytes_for(key, what, count, per)?;
    let mut v = Vec::new();
    v.try_reserve_exact(count).map_err(|_| {
        Error::config(
            key,
            format!(
                "{count} gives {what} of {}, which could not be allocated; ask for fewer",
                human_bytes(bytes as u128)
            ),
        )
    })?;
    Ok(v)
}

/// `count` zeroed items (see `vec_for`).
pub fn zeroed<T: Clone + Default>(key: &str, what: &str, count: usize) -> Result<Vec<T>> {
    let mut v = vec_for(key, what, count)?;
    v.resize(count, T::default());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_naming_the_bytes() {
        // 10^12 images of 192 bytes: 192 TB, more than any test machine has.
        let e = bytes_for("n", "pixels", 1_000_000_000_000, 192)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`n`") && e.contains("192.0 TB"), "{e}");
        // A product past usize::MAX is refused, not wrapped.
        let e = bytes_for("n", "pixels", usize::MAX, 192)
            .unwrap_err()
            .to_string();
        assert!(e.contains("address space"), "{e}");
        assert!(vec_for::<u64>("dup", "copies", usize::MAX / 4).is_err());
        // Small requests are granted exactly.
        assert_eq!(bytes_for("n", "pixels", 10, 192).unwrap(), 1920);
        assert_eq!(zeroed::<u8>("n", "pixels", 7).unwrap(), vec![0; 7]);
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(9_600_000_000), "9.6 GB");
    }
}

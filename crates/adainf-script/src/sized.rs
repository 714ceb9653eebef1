//! Rhai's built-ins that allocate a size the script names in one call (`pad` of arrays,
//! strings and BLOBs, `blob(n)`), checked before they allocate. An allocation the system
//! refuses aborts the process instead of failing, and one native call passes no operation
//! tick, so the memory guard and the copy budget (`memory`) would see such a call only after
//! it finished, or never. Registered on the engine, these take the place of Rhai's own (the
//! engine's functions come before its packages) and keep their meaning.

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString};

use crate::memory;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// What a script may use: its `--max-operations` and `--max-memory`.
#[derive(Clone, Copy)]
struct Limits {
    max_operations: u64,
    max_memory_gib: u64,
}

impl Limits {
    /// Refuses a call that would allocate `bytes` more and copy `copies` values.
    fn room(self, call: &str, bytes: u64, copies: u64) -> Res<()> {
        let limit = self.max_memory_gib.saturating_mul(1 << 30);
        let left = limit.saturating_sub(memory::live_bytes() as u64);
        if bytes > left {
            return fail(format!(
                "{call} would need {} more memory, and {} is left under the memory limit of {} GiB; if the script is right, raise it with --max-memory GIB",
                human_bytes(bytes),
                human_bytes(left),
                self.max_memory_gib
            ));
        }
        if copies > self.max_operations {
            return fail(format!(
                "{call} would copy {copies} values, more than the script's whole operation budget of {}; if the script is right, raise it with --max-operations",
                self.max_operations
            ));
        }
        Ok(())
    }
}

fn fail<T>(message: String) -> Res<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        message.into(),
        rhai::Position::NONE,
    )))
}

/// `1.5 GB`, `16.0 TB`.
fn human_bytes(bytes: u64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// The heap bytes and the allocations of one copy of `v` (arrays, maps and BLOBs are copied
/// whole; strings and handles are shared, so they cost nothing).
fn copy_cost(v: &Dynamic) -> (u64, u64) {
    const SLOT: u64 = std::mem::size_of::<Dynamic>() as u64;
    if let Ok(a) = v.as_array_ref() {
        a.iter().fold((24 + SLOT * a.len() as u64, 2), |(b, n), x| {
            let (xb, xn) = copy_cost(x);
            (b + xb, n + xn)
        })
    } else if let Ok(m) = v.as_map_ref() {
        m.values().fold((24, 1), |(b, n), x| {
            let (xb, xn) = copy_cost(x);
            (b + 64 + SLOT + xb, n + 1 + xn)
        })
    } else if let Ok(b) = v.as_blob_ref() {
        (24 + b.len() as u64, 2)
    } else {
        (0, 0)
    }
}

/// How many items a pad to `len` adds to `current` (0 for a length ≤ 0 or already reached).
fn added(len: INT, current: usize) -> u64 {
    u64::try_from(len)
        .unwrap_or(0)
        .saturating_sub(current as u64)
}

/// Registers the checked built-ins on `engine`.
pub fn register(engine: &mut Engine, max_operations: u64, max_memory_gib: u64) {
    let limits = Limits {
        max_operations,
        max_memory_gib,
    };
    engine.register_fn(
        "pad",
        move |array: &mut Array, len: INT, item: Dynamic| -> Res<()> {
            let new = added(len, array.len());
            if new == 0 {
                return Ok(());
            }
            let (bytes, copies) = copy_cost(&item);
            let slot = std::mem::size_of::<Dynamic>() as u64;
            limits.room(
                &format!("pad({len}, ..)"),
                new.saturating_mul(slot.saturating_add(bytes)),
                new.saturating_mul(copies),
            )?;
            array.resize(len as usize, item);
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |string: &mut ImmutableString, len: INT, character: char| -> Res<()> {
            let new = added(len, string.chars().count());
            if new == 0 {
                return Ok(());
            }
            let bytes = new.saturating_mul(character.len_utf8() as u64);
            limits.room(&format!("pad({len}, ..)"), bytes, 0)?;
            let s = string.make_mut();
            s.extend(std::iter::repeat_n(character, new as usize));
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |string: &mut ImmutableString, len: INT, padding: &str| -> Res<()> {
            let new = added(len, string.chars().count());
            if new == 0 {
                return Ok(());
            }
            if padding.is_empty() {
                return fail(format!(
                    "pad({len}, \"\") cannot reach a length by adding empty strings; pad with at least one character"
                ));
            }
            let bytes_per_char = padding.len().div_ceil(padding.chars().count()) as u64;
            limits.room(
                &format!("pad({len}, ..)"),
                new.saturating_mul(bytes_per_char),
                0,
            )?;
            let s = string.make_mut();
            s.extend(padding.chars().cycle().take(new as usize));
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |blob: &mut Blob, len: INT, value: INT| -> Res<()> {
            let new = added(len, blob.len());
            if new == 0 {
                return Ok(());
            }
            limits.room(&format!("pad({len}, ..)"), new, 0)?;
            blob.resize(len as usize, (value & 0xff) as u8);
            Ok(())
        },
    );
    let blob = move |len: INT, value: INT| -> Res<Blob> {
        let new = added(len, 0);
        limits.room(&format!("blob({len})"), new, 0)?;
        Ok(vec![(value & 0xff) as u8; new as usize])
    };
    engine.register_fn("blob", move |len: INT| blob(len, 0));
    engine.register_fn("blob", blob);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut engine = Engine::new();
        register(&mut engine, 1_000_000, 1);
        engine
    }

    /// The checked built-ins do what Rhai's own do (their documented examples).
    #[test]
    fn padding_keeps_rhais_meaning() {
        let e = engine();
        let run = |s: &str| e.eval::<String>(s).unwrap();
        assert_eq!(
            run("let x = [1, 2, 3]; x.pad(5, 42); x.pad(3, 123); `${x}`"),
            "[1, 2, 3, 42, 42]"
        );
        assert_eq!(
            run(r#"let s = "abc"; s.pad(5, '!'); s.pad(2, '?'); s"#),
            "abc!!"
        );
        assert_eq!(
            run(r#"let s = "héllo"; s.pad(10, "ab"); s"#),
            "héllo".to_string() + "ababa"
        );
        assert_eq!(run(r#"let s = "x"; s.pad(-3, "ab"); s"#), "x");
        assert_eq!(
            run("let b = blob(3, 0x142); b.pad(5, 7); `${b.len()} ${b[0]} ${b[4]}`"),
            "5 66 7"
        );
        assert_eq!(run("let b = blob(2); `${b}`"), "[0000]");
        assert_eq!(run("let b = blob(-2); `${b.len()}`"), "0");
    }

    /// Sizes past the memory limit or the budget are refused before anything is allocated
    /// (the process would abort or run for minutes otherwise).
    #[test]
    fn sizes_past_the_limits_are_refused_before_allocating() {
        let e = engine();
        for (script, wanted) in [
            ("let a = []; a.pad(1000000000000, 0);", "16.0 TB"),
            (r#"let s = "x"; s.pad(100000000000, "y");"#, "100.0 GB"),
            (r#"let s = "x"; s.pad(100000000000, 'y');"#, "100.0 GB"),
            ("let b = blob(1000000000000);", "1.0 TB"),
            ("let b = blob(1); b.pad(1000000000000, 1);", "1000.0 GB"),
        ] {
            let e = e.run(script).unwrap_err().to_string();
            assert!(
                e.contains(wanted) && e.contains("--max-memory"),
                "{script}: {e}"
            );
        }
        let e = e
            .run("let a = []; a.pad(600000, [1, 2, 3]);")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1200000 values") && e.contains("--max-operations"),
            "{e}"
        );
        let e = engine()
            .run(r#"let s = "x"; s.pad(5, "");"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }
}

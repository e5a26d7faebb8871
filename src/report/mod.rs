//! Presenting results: the terminal comparison table (reports with charts build on this).

pub mod table;

/// `64 B`, `4 KiB`, `1 MiB`; sizes that are not a whole unit stay in bytes.
pub fn size_label(size: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if size >= unit && size % unit == 0 {
            return format!("{} {name}", size / unit);
        }
    }
    format!("{size} B")
}

/// Nanoseconds as microseconds with precision that suits the magnitude.
pub fn micros(ns: f64) -> String {
    let us = ns / 1000.0;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1500), "1500 B");
        assert_eq!(micros(1234.0), "1.23");
        assert_eq!(micros(123_456.0), "123");
    }
}

//! Modular sequence-number comparisons, written as Wireshark 4.0's
//! `GT_SEQ`/`LT_SEQ`/`GE_SEQ`/`LE_SEQ` macros behave (sign of the 32-bit
//! difference). The only place wraparound lives.

/// `a > b` modulo 2^32.
#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}
/// `a < b` modulo 2^32.
#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
/// `a <= b` modulo 2^32.
#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap_around_2_pow_32() {
        assert!(gt(5, 0xFFFF_FFF0));
        assert!(lt(0xFFFF_FFF0, 5));
        assert!(le(7, 7));
        assert!(!gt(7, 7));
        assert!(gt(100, 99) && lt(99, 100));
    }
}

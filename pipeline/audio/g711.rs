//! ITU-T G.711 mu-law and A-law expansion to linear 16-bit PCM (telephony archives).

/// Expand one mu-law byte to a 16-bit linear sample.
pub fn mulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Expand one A-law byte to a 16-bit linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// Compress a 16-bit linear sample to mu-law (used to build G.711 test calls).
pub fn linear_to_mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s as u32).leading_zeros().saturating_sub(17).min(7)) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

/// Compress a 16-bit linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = (sample as i32) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    match SEGMENT_ENDS.iter().position(|&end| v <= end) {
        None => 0x7F ^ mask,
        Some(seg) => {
            let mantissa = if seg < 2 { (v >> 1) & 0x0F } else { (v >> seg) & 0x0F };
            (((seg as i32) << 4) | mantissa) as u8 ^ mask
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert_eq!(mulaw_to_linear(0x00), -32124);
        assert_eq!(mulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn round_trip_error_is_within_one_quantisation_step() {
        for s in (-32000i32..32000).step_by(97) {
            let s = s as i16;
            let mu = mulaw_to_linear(linear_to_mulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            // G.711 steps grow with magnitude: about 1/16 of the value, at least 16.
            let tolerance = (s as i32).abs() / 16 + 16;
            assert!((mu - s as i32).abs() <= tolerance, "mulaw {s} -> {mu}");
            assert!((a - s as i32).abs() <= tolerance, "alaw {s} -> {a}");
        }
    }
}

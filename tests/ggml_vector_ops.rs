//! callqa's whisper.cpp patches `scripts/whisper-cpp/vec-gelu-and-row-max-simd.patch`,
//! `whisper-vocabulary-on-vectors.patch`, `whisper-self-attention-flash-f32.patch` and
//! `whisper-signal-energy-on-vectors.patch`, checked through ggml itself: GELU on whole
//! AVX-512 vectors (ggml's tanh form, no longer its f16 table), softmax, whose row maximum is
//! now taken on vectors, the log-softmax over the vocabulary and the scans over it that
//! whisper.cpp now hands to ggml's CPU backend, flash attention (the decoder's self-attention)
//! summing f16 values in f32, and the signal energy behind token timestamps.

use std::ptr::null_mut;

use whisper_rs::whisper_rs_sys as ggml;

/// Builds a graph in a fresh ggml context with `build` (handed the context, returning the
/// output tensor), computes it on ggml's CPU backend and returns the output's first `len`
/// values.
fn compute(len: usize, build: impl FnOnce(*mut ggml::ggml_context) -> *mut ggml::ggml_tensor) -> Vec<f32> {
    // SAFETY: ggml's CPU backend through its C API; the context holds every tensor and is
    // freed before returning, after the output is copied out.
    unsafe {
        let ctx =
            ggml::ggml_init(ggml::ggml_init_params { mem_size: 1 << 24, mem_buffer: null_mut(), no_alloc: false });
        let y = build(ctx);
        let graph = ggml::ggml_new_graph(ctx);
        ggml::ggml_build_forward_expand(graph, y);
        let backend = ggml::ggml_backend_cpu_init();
        assert_eq!(ggml::ggml_backend_graph_compute(backend, graph), ggml::ggml_status_GGML_STATUS_SUCCESS);
        ggml::ggml_backend_free(backend);
        let out = std::slice::from_raw_parts((*y).data.cast::<f32>(), len).to_vec();
        ggml::ggml_free(ctx);
        out
    }
}

/// A tensor of `values` in `ctx`, of shape [ne0, ne1, ne2], stored as `kind` (f32 or f16).
fn tensor(
    ctx: *mut ggml::ggml_context,
    kind: ggml::ggml_type,
    values: &[f32],
    [ne0, ne1, ne2]: [usize; 3],
) -> *mut ggml::ggml_tensor {
    assert_eq!(values.len(), ne0 * ne1 * ne2);
    // SAFETY: a tensor of exactly values.len() elements of `kind`, filled from values
    unsafe {
        let t = ggml::ggml_new_tensor_3d(ctx, kind, ne0 as i64, ne1 as i64, ne2 as i64);
        if kind == ggml::ggml_type_GGML_TYPE_F16 {
            ggml::ggml_fp32_to_fp16_row(values.as_ptr(), (*t).data.cast(), values.len() as i64);
        } else {
            assert_eq!(kind, ggml::ggml_type_GGML_TYPE_F32);
            std::ptr::copy_nonoverlapping(values.as_ptr(), (*t).data.cast::<f32>(), values.len());
        }
        t
    }
}

/// Runs `op` (built from one f32 tensor holding `input`, `row` values per row) on ggml's CPU
/// backend and returns its output.
fn run(
    input: &[f32],
    row: usize,
    op: unsafe extern "C" fn(*mut ggml::ggml_context, *mut ggml::ggml_tensor) -> *mut ggml::ggml_tensor,
) -> Vec<f32> {
    compute(input.len(), |ctx| {
        let x = tensor(ctx, ggml::ggml_type_GGML_TYPE_F32, input, [row, input.len() / row, 1]);
        // SAFETY: a ggml op on a tensor of this context
        unsafe { op(ctx, x) }
    })
}

#[test]
fn gelu_is_the_tanh_form_to_float_precision_on_avx512() {
    // -12 .. 12 in 1003 steps: both sides of ggml's +-10 cut-offs, and a partial last vector
    let input: Vec<f32> = (0..1003).map(|i| -12.0 + 24.0 * i as f32 / 1002.0).collect();
    let got = run(&input, input.len(), ggml::ggml_gelu);
    // SAFETY: a query of ggml's build flags
    let avx512 = unsafe { ggml::ggml_cpu_has_avx512() } != 0;
    for (&x, &y) in input.iter().zip(&got) {
        let x64 = f64::from(x);
        let expected =
            0.5 * x64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * x64 * (1.0 + 0.044715 * x64 * x64)).tanh());
        // ggml's f16 table rounds input and output to 11 significant bits
        let tolerance = if avx512 { 2e-6 * expected.abs().max(1.0) } else { 2e-3 * expected.abs().max(1.0) };
        assert!((f64::from(y) - expected).abs() <= tolerance, "gelu({x}) = {y}, expected {expected}");
    }
}

#[test]
fn softmax_subtracts_each_rows_maximum_wherever_it_is() {
    // rows of 1500 (whisper's encoder context), 37 and 5 values between 0 and 200: a row maximum
    // taken wrong overflows exp. The maximum sits in the middle of one row (a whole vector),
    // at the end of the next (the scalar tail).
    for row in [1500usize, 37, 5] {
        let mut input = Vec::new();
        for (r, at) in [row / 2, row - 1].into_iter().enumerate() {
            let start = input.len();
            input.extend((0..row).map(|i| ((i * 37 + r * 11) % 101) as f32));
            input[start + at] = 200.0;
        }
        let got = run(&input, row, ggml::ggml_soft_max);
        for (values, probabilities) in input.chunks(row).zip(got.chunks(row)) {
            let total: f64 = values.iter().map(|&v| (f64::from(v) - 200.0).exp()).sum();
            for (&v, &p) in values.iter().zip(probabilities) {
                let expected = (f64::from(v) - 200.0).exp() / total;
                assert!((f64::from(p) - expected).abs() <= 1e-6, "row of {row}: softmax {p}, expected {expected}");
            }
        }
    }
}

unsafe extern "C" {
    fn ggml_cpu_callqa_max_f32(x: *const f32, n: i32) -> f32;
    fn ggml_cpu_callqa_log_softmax(logits: *const f32, n: i32, logprobs: *mut f32);
    fn ggml_cpu_callqa_first_above(x: *const f32, n: i32, threshold: f32) -> i32;
    fn ggml_cpu_callqa_signal_energy(signal: *const f32, n: i32, half_window: i32, energy: *mut f32);
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let mut logprobs = vec![f32::NAN; logits.len()];
    // SAFETY: both slices hold `logits.len()` values
    unsafe { ggml_cpu_callqa_log_softmax(logits.as_ptr(), logits.len() as i32, logprobs.as_mut_ptr()) };
    logprobs
}

#[test]
fn log_softmax_over_the_vocabulary_matches_double_precision_and_keeps_suppressed_tokens_out() {
    // whisper's multilingual vocabulary (51,865: a partial last vector), logits between -20 and
    // 30 as a decoder gives them, every seventh suppressed (-inf) as whisper.cpp's filters do,
    // and the largest in the scalar tail
    let n = 51_865;
    let mut logits: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5000) as f32 / 100.0 - 20.0).collect();
    for suppressed in logits.iter_mut().step_by(7) {
        *suppressed = f32::NEG_INFINITY;
    }
    logits[n - 2] = 31.5;
    let got = log_softmax(&logits);
    let total: f64 = logits.iter().map(|&v| (f64::from(v) - 31.5).exp()).sum();
    for (i, (&v, &lp)) in logits.iter().zip(&got).enumerate() {
        if v == f32::NEG_INFINITY {
            assert_eq!(lp, f32::NEG_INFINITY, "suppressed token {i} has log-probability {lp}");
            continue;
        }
        let expected = f64::from(v) - 31.5 - total.ln();
        // float arithmetic on log-probabilities down to about -52: a few units in their last place
        assert!((f64::from(lp) - expected).abs() <= 1e-5, "token {i}: {lp}, expected {expected}");
    }
    let probability_mass: f64 = got.iter().map(|&lp| f64::from(lp).exp()).sum();
    assert!((probability_mass - 1.0).abs() < 1e-5, "probabilities sum to {probability_mass}");

    // the maximum of a prefix (whisper.cpp takes the text tokens' before its timestamp rule),
    // wherever in it the maximum sits
    for at in [0, 1000, 50_256] {
        let mut x = logits.clone();
        x[at] = 40.0;
        // SAFETY: 50,257 values of x
        assert_eq!(unsafe { ggml_cpu_callqa_max_f32(x.as_ptr(), 50_257) }, 40.0, "maximum at {at}");
    }

    // a step where every token is suppressed has no probabilities, not NaN
    assert!(log_softmax(&[f32::NEG_INFINITY; 37]).iter().all(|&lp| lp == f32::NEG_INFINITY));
}

#[test]
fn flash_attention_sums_f16_values_in_f32_and_skips_the_cells_the_mask_removes() {
    // the decoder's self-attention at beam 5: 5 queries (one per beam) over a cache the beams
    // share, each owning every fifth cell after 3 shared prompt cells; 2 heads of 64 values
    const HEAD: usize = 64;
    const HEADS: usize = 2;
    const BEAMS: usize = 5;
    const CELLS: usize = 333;
    const PROMPT: usize = 3;
    let owns = |beam: usize, cell: usize| cell < PROMPT || cell % BEAMS == beam;
    // values on the f16 grid, so that ggml's conversions of inputs are exact and the only
    // rounding left is the arithmetic's
    let query: Vec<f32> = (0..HEAD * BEAMS * HEADS).map(|i| ((i * 29) % 64) as f32 / 16.0 - 2.0).collect();
    let key: Vec<f32> = (0..HEAD * CELLS * HEADS).map(|i| ((i * 31 + 7) % 64) as f32 / 32.0 - 1.0).collect();
    let mut value: Vec<f32> = (0..HEAD * CELLS * HEADS).map(|i| ((i * 37 + 3) % 64) as f32 / 32.0 - 1.0).collect();
    // cells no query may see hold values that would show in any output that read them
    for (i, v) in value.iter_mut().enumerate() {
        if (0..BEAMS).all(|beam| !owns(beam, (i / HEAD) % CELLS)) {
            *v = 1000.0;
        }
    }
    let mask: Vec<f32> =
        (0..CELLS * BEAMS).map(|i| if owns(i / CELLS, i % CELLS) { 0.0 } else { f32::NEG_INFINITY }).collect();
    let scale = 1.0 / (HEAD as f32).sqrt();

    // laid out [value, head, query]
    let got = compute(HEAD * HEADS * BEAMS, |ctx| {
        let (f32_kind, f16_kind) = (ggml::ggml_type_GGML_TYPE_F32, ggml::ggml_type_GGML_TYPE_F16);
        let q = tensor(ctx, f32_kind, &query, [HEAD, BEAMS, HEADS]);
        let k = tensor(ctx, f16_kind, &key, [HEAD, CELLS, HEADS]);
        let v = tensor(ctx, f16_kind, &value, [HEAD, CELLS, HEADS]);
        let m = tensor(ctx, f16_kind, &mask, [CELLS, BEAMS, 1]);
        // SAFETY: a ggml op on tensors of this context
        unsafe { ggml::ggml_flash_attn_ext(ctx, q, k, v, m, scale, 0.0, 0.0) }
    });

    for head in 0..HEADS {
        for beam in 0..BEAMS {
            let q = &query[HEAD * (beam + BEAMS * head)..][..HEAD];
            let cell = |c: usize| HEAD * (c + CELLS * head);
            let scores: Vec<(usize, f64)> = (0..CELLS)
                .filter(|&c| owns(beam, c))
                .map(|c| {
                    let dot: f64 =
                        q.iter().zip(&key[cell(c)..][..HEAD]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                    (c, dot * f64::from(scale))
                })
                .collect();
            let max = scores.iter().map(|&(_, s)| s).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|&(_, s)| (s - max).exp()).sum();
            for d in 0..HEAD {
                let expected: f64 =
                    scores.iter().map(|&(c, s)| (s - max).exp() / total * f64::from(value[cell(c) + d])).sum();
                let actual = got[HEAD * (head + HEADS * beam) + d];
                // f32 sums over 69 cells of values in [-1, 1]: a few units in the 6th decimal.
                // ggml's f16 accumulator (11 significant bits) missed the first value here by 4.5e-4.
                assert!(
                    (f64::from(actual) - expected).abs() <= 1e-5,
                    "head {head}, beam {beam}, value {d}: {actual}, expected {expected}"
                );
            }
        }
    }
}

#[test]
fn first_above_finds_the_first_logit_over_the_threshold_in_any_lane_or_the_tail() {
    let n = 51_865;
    let mut logits: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5000) as f32 / 1000.0 - 20.0).collect();
    logits[3] = f32::NAN; // not above anything, as in whisper.cpp's comparison
    let first_above = |x: &[f32], threshold: f32| {
        // SAFETY: x holds x.len() values
        unsafe { ggml_cpu_callqa_first_above(x.as_ptr(), x.len() as i32, threshold) as usize }
    };
    for at in [0, 5, 15, 16, 17, 1000, 51_840, n - 1] {
        let mut x = logits.clone();
        x[at] = 10.0;
        assert_eq!(first_above(&x, 9.5), at, "only logit above at {at}");
        if at > 0 {
            // from an offset, as beam search resumes after each logit it keeps
            assert_eq!(first_above(&x[1..], 9.5), at - 1, "from 1, only logit above at {at}");
        }
    }
    assert_eq!(first_above(&logits, 100.0), n, "none above");
    // equal is not above: a logit equal to the k-th kept does not displace it
    let mut x = logits.clone();
    x[2] = -16.0;
    assert_eq!(first_above(&x, -16.0), 5, "x[2] equals the threshold, x[3] is NaN, x[5] is the first above");
}

#[test]
fn signal_energy_is_whisper_cpps_window_mean_to_the_bit() {
    // whisper.cpp's own loop, in f32 like its code: each sum adds its window front to back
    fn reference(signal: &[f32], half_window: usize) -> Vec<f32> {
        let n = signal.len() as isize;
        (0..n)
            .map(|i| {
                let mut sum = 0.0f32;
                for j in -(half_window as isize)..=half_window as isize {
                    if (0..n).contains(&(i + j)) {
                        sum += signal[(i + j) as usize].abs();
                    }
                }
                sum / (2 * half_window + 1) as f32
            })
            .collect()
    }
    // lengths around the 64-sample blocks and shorter than a window, a speech-like signal
    // whose additions round differently in any other order
    for n in [7usize, 64, 65, 129, 1000, 16_001] {
        let signal: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * (1.0 + (i % 97) as f32 / 13.0)).collect();
        let mut energy = vec![f32::NAN; n];
        // SAFETY: both slices hold n values
        unsafe { ggml_cpu_callqa_signal_energy(signal.as_ptr(), n as i32, 32, energy.as_mut_ptr()) };
        let expected = reference(&signal, 32);
        for (i, (got, want)) in energy.iter().zip(&expected).enumerate() {
            assert_eq!(got.to_bits(), want.to_bits(), "{n} samples, sample {i}: {got} against {want}");
        }
    }
}

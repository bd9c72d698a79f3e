//! callqa's whisper.cpp patch `scripts/whisper-cpp/repack-bf16-f16-as-int8-rows-vnni.patch`,
//! checked through ggml itself, against the same int8 arithmetic written out here:
//! - weights: a bf16 matrix placed in ggml's CPU repack buffer, multiplied by a few columns
//!   and read back by row. Where ggml was built without AVX-512 VNNI, the buffer must refuse
//!   the matrix (the patch compiles to nothing there and whisper.cpp keeps the plain CPU
//!   buffer).
//! - attention: an f16 matrix in ordinary memory (keys, permuted as whisper.cpp's are) times
//!   many columns, which the patch packs into int8 rows as the product runs; columns without
//!   a negative value (probabilities) are quantised unsigned, their rounding residual added
//!   back.
//! - cross-attention: the same matrix registered ahead (as whisper.cpp registers its
//!   cross-attention keys and values after the encoder, `whisper-prepack-cross-attention.patch`)
//!   and multiplied by a few columns, which alone would stay f16; forgotten, it is f16 again.
//!
//! The sizes reach every branch of the kernel: 89 rows are 4 groups of 16 in one register
//! block, then 1 full group and a group of 9 valid rows alone; 7 columns are a block of 5 and
//! one of 2. The attention rows are 52 long, so the last 16 values of a row are a partial
//! vector.

use std::ffi::CStr;
use std::ptr::null_mut;

use whisper_rs::whisper_rs_sys as ggml;

const K: usize = 128;
const ROWS: usize = 89;
const COLS: usize = 7;
const PICKED_ROWS: [i32; 4] = [0, 17, 80, 88];

/// A reproducible value in [-1, 1), scaled per row or column so that scales differ.
fn value(seed: usize, i: usize) -> f32 {
    let h = (seed * 7919 + i * 104_729 + 13).wrapping_mul(2_654_435_761) % 65_536;
    (h as f32 / 32_768.0 - 1.0) * (1.0 + (seed % 5) as f32)
}

/// One scale per vector and the vector rounded to integers in those units, ties to even, as
/// the kernel does: int8 in units of the largest magnitude / 127, or, for a column with no
/// negative value (`allow_unsigned`), 0..255 in units of its largest value / 255. Weights
/// packed at load round their exact product with the inverse scale (`exact_product`),
/// everything else the product rounded to f32.
fn quantise(v: &[f32], exact_product: bool, allow_unsigned: bool) -> (f32, Vec<i32>) {
    let amax = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let levels = if allow_unsigned && v.iter().all(|&x| x >= 0.0) { 255.0 } else { 127.0 };
    let inv = if amax > 0.0 { levels / amax } else { 0.0 };
    let round = |x: f32| {
        if exact_product {
            (f64::from(x) * f64::from(inv)).round_ties_even()
        } else {
            f64::from((x * inv).round_ties_even())
        }
    };
    (amax / levels, v.iter().map(|&x| round(x) as i32).collect())
}

/// `got` (row-major by column: `got[c * rows.len() + r]`) against the int8 arithmetic of the
/// quantised rows and columns (to float rounding), and within 1% of the norms of the float
/// product. An unsigned column's rounding residual, per value, comes back times the row's
/// sum.
fn assert_int8_product(
    got: &[f32],
    rows: &[&[f32]],
    quantised_rows: &[(f32, Vec<i32>)],
    columns: &[&[f32]],
    allow_unsigned: bool,
) {
    for (c, column) in columns.iter().enumerate() {
        let (x_scale, qx) = quantise(column, false, allow_unsigned);
        let unsigned = allow_unsigned && column.iter().all(|&x| x >= 0.0);
        let residual = if unsigned {
            column.iter().zip(&qx).map(|(&x, &q)| x - q as f32 * x_scale).sum::<f32>() / column.len() as f32
        } else {
            0.0
        };
        for (r, (w_scale, qw)) in quantised_rows.iter().enumerate() {
            let dot: i32 = qw.iter().zip(&qx).map(|(a, b)| a * b).sum();
            let row_sum = qw.iter().sum::<i32>() as f32 * w_scale;
            let expected = dot as f32 * (w_scale * x_scale) + row_sum * residual;
            let value = got[c * rows.len() + r];
            assert!(
                (value - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "row {r}, column {c}: {value} against int8 arithmetic {expected}"
            );
            let exact: f32 = rows[r].iter().zip(column.iter()).map(|(a, b)| a * b).sum();
            let norms =
                rows[r].iter().map(|a| a * a).sum::<f32>().sqrt() * column.iter().map(|b| b * b).sum::<f32>().sqrt();
            assert!((value - exact).abs() <= 0.01 * norms, "row {r}, column {c}: {value} against {exact}");
        }
    }
}

/// The CPU device's repack buffer type ("CPU_REPACK").
unsafe fn repack_buffer_type(cpu: ggml::ggml_backend_dev_t) -> ggml::ggml_backend_buffer_type_t {
    let get = ggml::ggml_backend_reg_get_proc_address(
        ggml::ggml_backend_cpu_reg(),
        c"ggml_backend_dev_get_extra_bufts".as_ptr(),
    );
    assert!(!get.is_null(), "ggml's CPU backend offers extra buffer types");
    let get: unsafe extern "C" fn(ggml::ggml_backend_dev_t) -> *mut ggml::ggml_backend_buffer_type_t =
        std::mem::transmute(get);
    let mut types = get(cpu);
    while !types.is_null() && !(*types).is_null() {
        if CStr::from_ptr(ggml::ggml_backend_buft_name(*types)).to_bytes() == b"CPU_REPACK" {
            return *types;
        }
        types = types.add(1);
    }
    panic!("ggml was built without its repack buffer (GGML_CPU_REPACK)");
}

#[test]
fn bf16_matrices_multiply_as_int8_rows_where_ggml_has_avx512_vnni() {
    // bf16 weights and their exact f32 values, row by row
    let weights_f32: Vec<f32> = (0..ROWS).flat_map(|r| (0..K).map(move |i| value(r, i))).collect();
    let mut weights_bf16 = vec![ggml::ggml_bf16_t { bits: 0 }; ROWS * K];
    let mut weights = vec![0.0f32; ROWS * K];
    let activations: Vec<f32> = (0..COLS).flat_map(|c| (0..K).map(move |i| value(1000 + c, i))).collect();
    // SAFETY: ggml's CPU backend through its C API, every pointer from it checked or sized
    // as the calls document; the contexts and buffers are freed at the end.
    unsafe {
        ggml::ggml_fp32_to_bf16_row(weights_f32.as_ptr(), weights_bf16.as_mut_ptr(), (ROWS * K) as i64);
        ggml::ggml_bf16_to_fp32_row(weights_bf16.as_ptr(), weights.as_mut_ptr(), (ROWS * K) as i64);

        let cpu = ggml::ggml_backend_dev_by_type(ggml::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_CPU);
        let weight_ctx = ggml::ggml_init(ggml::ggml_init_params {
            mem_size: ggml::ggml_tensor_overhead(),
            mem_buffer: null_mut(),
            no_alloc: true,
        });
        let w = ggml::ggml_new_tensor_2d(weight_ctx, ggml::ggml_type_GGML_TYPE_BF16, K as i64, ROWS as i64);
        let weight_buffer = ggml::ggml_backend_alloc_ctx_tensors_from_buft(weight_ctx, repack_buffer_type(cpu));
        assert!(!weight_buffer.is_null());

        let ctx =
            ggml::ggml_init(ggml::ggml_init_params { mem_size: 1 << 20, mem_buffer: null_mut(), no_alloc: false });
        let x = ggml::ggml_new_tensor_2d(ctx, ggml::ggml_type_GGML_TYPE_F32, K as i64, COLS as i64);
        std::ptr::copy_nonoverlapping(activations.as_ptr(), (*x).data.cast::<f32>(), K * COLS);
        let ids = ggml::ggml_new_tensor_1d(ctx, ggml::ggml_type_GGML_TYPE_I32, PICKED_ROWS.len() as i64);
        std::ptr::copy_nonoverlapping(PICKED_ROWS.as_ptr(), (*ids).data.cast::<i32>(), PICKED_ROWS.len());
        let product = ggml::ggml_mul_mat(ctx, w, x);
        let rows = ggml::ggml_get_rows(ctx, w, ids);

        let vnni = ggml::ggml_cpu_has_avx512_vnni() != 0;
        for op in [product, rows] {
            assert_eq!(
                ggml::ggml_backend_dev_supports_op(cpu, op),
                vnni,
                "the repack buffer takes bf16 matrices exactly where ggml has AVX-512 VNNI"
            );
        }
        if vnni {
            ggml::ggml_backend_tensor_set(w, weights_bf16.as_ptr().cast(), 0, ggml::ggml_nbytes(w));
            let graph = ggml::ggml_new_graph(ctx);
            ggml::ggml_build_forward_expand(graph, product);
            ggml::ggml_build_forward_expand(graph, rows);
            let backend = ggml::ggml_backend_cpu_init();
            assert_eq!(ggml::ggml_backend_graph_compute(backend, graph), ggml::ggml_status_GGML_STATUS_SUCCESS);
            ggml::ggml_backend_free(backend);

            let quantised_rows: Vec<(f32, Vec<i32>)> =
                weights.chunks(K).map(|row| quantise(row, true, false)).collect();
            let got = std::slice::from_raw_parts((*product).data.cast::<f32>(), ROWS * COLS);
            let weight_rows: Vec<&[f32]> = weights.chunks(K).collect();
            let columns: Vec<&[f32]> = activations.chunks(K).collect();
            assert_int8_product(got, &weight_rows, &quantised_rows, &columns, false);
            let got = std::slice::from_raw_parts((*rows).data.cast::<f32>(), K * PICKED_ROWS.len());
            for (j, &r) in PICKED_ROWS.iter().enumerate() {
                let (w_scale, qw) = &quantised_rows[r as usize];
                let expected: Vec<f32> = qw.iter().map(|&q| q as f32 * w_scale).collect();
                assert_eq!(&got[j * K..(j + 1) * K], &expected[..], "row {r} read back");
            }
        }
        ggml::ggml_free(ctx);
        ggml::ggml_backend_buffer_free(weight_buffer);
        ggml::ggml_free(weight_ctx);
    }
}

const DIM: usize = 52;
const KEYS: usize = 37;
const HEADS: usize = 2;

// callqa's registry of f16 matrices packed ahead (repack.cpp), which whisper.cpp calls
unsafe extern "C" {
    fn ggml_cpu_callqa_prepack_f16(data: *const std::ffi::c_void, ne0: i64, ne1: i64, ne2: i64, nb1: usize, nb2: usize);
    fn ggml_cpu_callqa_forget_prepacked(begin: *const std::ffi::c_void, end: *const std::ffi::c_void);
}

/// Keys as whisper.cpp stores them, [DIM, HEADS, KEYS] in f16 (their exact values returned),
/// times `queries` columns per head, of which those from `first_unsigned` on have no negative
/// value; `prepack` registers the keys' permuted view before the product and forgets it after.
/// Returns the keys, the columns and the product.
fn attention_product(queries: usize, first_unsigned: usize, prepack: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let keys_f32: Vec<f32> = (0..KEYS * HEADS).flat_map(|r| (0..DIM).map(move |i| value(r, i))).collect();
    let mut keys_f16 = vec![0u16; keys_f32.len()];
    let mut keys = vec![0.0f32; keys_f32.len()];
    let columns: Vec<f32> = (0..HEADS * queries)
        .flat_map(|c| {
            (0..DIM)
                .map(move |i| if c % queries >= first_unsigned { value(500 + c, i).abs() } else { value(500 + c, i) })
        })
        .collect();
    // SAFETY: as in the test above; the registration is forgotten before the context is freed
    unsafe {
        ggml::ggml_fp32_to_fp16_row(keys_f32.as_ptr(), keys_f16.as_mut_ptr(), keys_f32.len() as i64);
        ggml::ggml_fp16_to_fp32_row(keys_f16.as_ptr(), keys.as_mut_ptr(), keys_f32.len() as i64);
        let ctx =
            ggml::ggml_init(ggml::ggml_init_params { mem_size: 1 << 20, mem_buffer: null_mut(), no_alloc: false });
        let k = ggml::ggml_new_tensor_3d(ctx, ggml::ggml_type_GGML_TYPE_F16, DIM as i64, HEADS as i64, KEYS as i64);
        std::ptr::copy_nonoverlapping(keys_f16.as_ptr(), (*k).data.cast::<u16>(), keys_f16.len());
        let q = ggml::ggml_new_tensor_3d(ctx, ggml::ggml_type_GGML_TYPE_F32, DIM as i64, queries as i64, HEADS as i64);
        std::ptr::copy_nonoverlapping(columns.as_ptr(), (*q).data.cast::<f32>(), columns.len());
        let keys_view = ggml::ggml_permute(ctx, k, 0, 2, 1, 3);
        if prepack {
            let v = &*keys_view;
            ggml_cpu_callqa_prepack_f16(v.data, v.ne[0], v.ne[1], v.ne[2], v.nb[1], v.nb[2]);
        }
        let product = ggml::ggml_mul_mat(ctx, keys_view, q);
        let graph = ggml::ggml_new_graph(ctx);
        ggml::ggml_build_forward_expand(graph, product);
        let backend = ggml::ggml_backend_cpu_init();
        assert_eq!(ggml::ggml_backend_graph_compute(backend, graph), ggml::ggml_status_GGML_STATUS_SUCCESS);
        ggml::ggml_backend_free(backend);
        if prepack {
            ggml_cpu_callqa_forget_prepacked((*k).data, (*k).data.cast::<u8>().add(ggml::ggml_nbytes(k)).cast());
        }
        let got = std::slice::from_raw_parts((*product).data.cast::<f32>(), KEYS * queries * HEADS).to_vec();
        ggml::ggml_free(ctx);
        (keys, columns, got)
    }
}

/// The product of [`attention_product`] checked head by head: as int8 rows (`int8`), or as
/// ggml's f16 products, which round only the columns (to f16).
fn assert_attention(keys: &[f32], columns: &[f32], got: &[f32], queries: usize, int8: bool) {
    for h in 0..HEADS {
        // key r of head h is row r * HEADS + h of the stored keys
        let rows: Vec<&[f32]> = (0..KEYS).map(|r| &keys[(r * HEADS + h) * DIM..][..DIM]).collect();
        let columns: Vec<&[f32]> = columns[h * queries * DIM..][..queries * DIM].chunks(DIM).collect();
        let got = &got[h * KEYS * queries..][..KEYS * queries];
        if int8 {
            let quantised_rows: Vec<(f32, Vec<i32>)> = rows.iter().map(|row| quantise(row, false, false)).collect();
            assert_int8_product(got, &rows, &quantised_rows, &columns, true);
            continue;
        }
        for (c, column) in columns.iter().enumerate() {
            let mut column_f16 = vec![0u16; DIM];
            let mut rounded = vec![0.0f32; DIM];
            // SAFETY: conversions between slices of DIM values
            unsafe {
                ggml::ggml_fp32_to_fp16_row(column.as_ptr(), column_f16.as_mut_ptr(), DIM as i64);
                ggml::ggml_fp16_to_fp32_row(column_f16.as_ptr(), rounded.as_mut_ptr(), DIM as i64);
            }
            for (r, row) in rows.iter().enumerate() {
                let expected: f32 = row.iter().zip(&rounded).map(|(a, b)| a * b).sum();
                let norms =
                    row.iter().map(|a| a * a).sum::<f32>().sqrt() * rounded.iter().map(|b| b * b).sum::<f32>().sqrt();
                let value = got[c * KEYS + r];
                // ggml sums in its own order: float rounding of the norms' size, far below int8's
                assert!(
                    (value - expected).abs() <= 1e-5 * norms,
                    "head {h}, row {r}, column {c}: {value} against f16 arithmetic {expected}"
                );
            }
        }
    }
}

#[test]
fn attention_products_of_many_columns_run_as_int8_where_ggml_has_avx512_vnni() {
    // 21 columns per head, 0..10 signed, 11..20 with no negative value (as probabilities are)
    let (keys, columns, got) = attention_product(21, 11, false);
    // SAFETY: a query of ggml's build flags
    let vnni = unsafe { ggml::ggml_cpu_has_avx512_vnni() } != 0;
    assert_attention(&keys, &columns, &got, 21, vnni);
}

#[test]
fn registered_cross_attention_keys_take_few_columns_as_int8_until_forgotten() {
    // SAFETY: a query of ggml's build flags
    let vnni = unsafe { ggml::ggml_cpu_has_avx512_vnni() } != 0;
    let (keys, columns, got) = attention_product(3, 2, true);
    assert_attention(&keys, &columns, &got, 3, vnni);
    // the same product unregistered: 3 columns stay f16
    let (keys, columns, got) = attention_product(3, 2, false);
    assert_attention(&keys, &columns, &got, 3, false);
}

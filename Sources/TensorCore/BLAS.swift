import COpenBLAS
import Foundation

/// The C boundary: the only file that imports `COpenBLAS`.
///
/// Integer arguments are converted to `Int32` with a check (CBLAS takes 32-bit ints); pointers
/// stay inside the callers' `withUnsafe…` scopes.
public enum BLAS {
    /// OpenBLAS runs single-threaded: PruneGym parallelises GEMMs itself (`parallelGEMM`, batched
    /// products), so one pool of workers serves both GEMM and element-wise kernels. (With
    /// OpenBLAS's own pool, its idle workers spin in `sched_yield` and steal the cores the
    /// element-wise kernels need: a fifth of a transformer training step in a profile.)
    static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Below this many floating-point operations a GEMM runs on one thread, unless it has rows
    /// enough to split by rows (`rowSplitThreshold`).
    static let parallelThreshold = 1 << 21

    /// From this many floating-point operations up to twice `parallelThreshold` (where two
    /// threads would otherwise not split it), a GEMM whose result has at least
    /// 2 × `minimumRowsPerPart` rows is split by rows into two parts. Inference at batch
    /// 1 is made of such products (a pruned sequence of ~100 tokens times a 128 × 128 projection
    /// is 3 MFLOP): kept on one thread, a third of a pruned prefill left the second core idle.
    ///
    /// The split depends on the shape alone — two parts, run one after the other on one thread —
    /// because OpenBLAS picks its kernel by size and the parts of a product can round differently
    /// from the whole (128 × 16 × 128, for one, on Cooperlake kernels; most of the model's shapes
    /// on Zen's): so the bits do not depend on the thread count.
    static let rowSplitThreshold = 1 << 19

    /// The most parts a GEMM is split into. Fixed, not the thread count: OpenBLAS's parts of a
    /// product need not give the whole product's bits (on this project's Zen 3 machine most of
    /// the model's shapes do not), so a split that followed the thread count would make the
    /// results depend on `PRUNEGYM_THREADS`. Two parts keep both cores of the design's machine
    /// busy; on more cores, batched products and the element-wise kernels use every worker.
    static let maximumParts = 2

    /// The fewest rows of C each half of a GEMM split by `rowSplitThreshold`'s rule gets.
    static let minimumRowsPerPart = 32

    /// C ← α·op(A)·op(B) + β·C, split over the worker threads by rows of C (or by columns when C
    /// has few rows). Each part is a single-threaded `cblas_sgemm` on a sub-block addressed by
    /// pointer offsets, with no copies. With `rowsStartAs`, each part first writes that row of `n`
    /// values into every row of its block of C — a bias, onto which β = 1 then accumulates the
    /// product — on its own thread, just before its product reads it.
    public static func parallelGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
        rowsStartAs row: UnsafePointer<Float>? = nil
    ) {
        // Columns first..<first + count of rows 0..<rows of C (stride ldc) ← the given row's.
        func fill(rows: Int, columns first: Int, count: Int, _ c: UnsafeMutablePointer<Float>) {
            guard let row else { return }
            for r in 0..<rows { (c + r * ldc + first).update(from: row + first, count: count) }
        }
        let (parts, byRows) = partition(m: m, n: n, k: k)
        if parts <= 1 {
            fill(rows: m, columns: 0, count: n, c)
            gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                 a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let length = byRows ? m : n
        let chunk = (length + parts - 1) / parts
        Parallel.forRanges(parts, cost: Parallel.minimumParallelCount) { range in
            for part in range {
                let start = part * chunk
                let size = Swift.min(chunk, length - start)
                guard size > 0 else { continue }
                if byRows {
                    fill(rows: size, columns: 0, count: n, c + start * ldc)
                    // Rows of op(A): row offset in A, or column offset when A is stored transposed.
                    gemm(transposeA: transposeA, transposeB: transposeB, m: size, n: n, k: k, alpha: alpha,
                         a: a + (transposeA ? start : start * lda), lda: lda, b: b, ldb: ldb,
                         beta: beta, c: c + start * ldc, ldc: ldc)
                } else {
                    fill(rows: m, columns: start, count: size, c)
                    gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: size, k: k, alpha: alpha,
                         a: a, lda: lda, b: b + (transposeB ? start * ldb : start), ldb: ldb,
                         beta: beta, c: c + start, ldc: ldc)
                }
            }
        }
    }

    /// How `parallelGEMM` splits an m × n × k product: into how many parts, by rows of C or by
    /// columns. A function of the shape alone (never of the thread count), so the bits of every
    /// product are the same with one worker or many.
    static func partition(m: Int, n: Int, k: Int) -> (parts: Int, byRows: Bool) {
        let work = 2 * m * n * k
        if work >= rowSplitThreshold && work < 2 * parallelThreshold && m >= 2 * minimumRowsPerPart {
            return (2, true)
        }
        let parts = Swift.min(maximumParts, Swift.max(1, work / parallelThreshold))
        return (parts, m >= n || m >= 64 * parts)
    }

    /// C ← α·op(A)·op(B) + β·C for row-major matrices, where op transposes when asked.
    /// `A` is `m×k` (stored `k×m` when transposed) with leading dimension `lda`; likewise `B`, `C`.
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configured
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            int32(m, "m"), int32(n, "n"), int32(k, "k"),
            alpha, a, int32(lda, "lda"), b, int32(ldb, "ldb"),
            beta, c, int32(ldc, "ldc"))
    }

    /// Threads OpenBLAS uses for one GEMM.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(int32(newValue, "threadCount")) }
    }

    private static func int32(_ value: Int, _ name: String) -> Int32 {
        guard let converted = Int32(exactly: value) else {
            preconditionFailure("BLAS: \(name) = \(value) does not fit the 32-bit CBLAS interface")
        }
        return converted
    }
}

extension BLAS {
    /// Whether the shim's AVX2 + FMA kernels run (x86-64 CPUs with both, checked once with
    /// `cpuid`; `PRUNEGYM_SIMD=portable` forces the portable four-lane Swift code instead).
    static let avx2: Bool = vectorLevel >= 2 && ProcessInfo.processInfo.environment["PRUNEGYM_SIMD"] != "portable"

    /// Whether the softmax, x·σ(a·x) and GELU run sixteen lanes at a time (CPUs with AVX-512;
    /// `PRUNEGYM_SIMD=avx2` keeps them at eight). The sixteen-lane kernels give the eight-lane
    /// ones' bits on every input, so this changes speed only.
    static let avx512: Bool = avx2 && vectorLevel >= 3 && ProcessInfo.processInfo.environment["PRUNEGYM_SIMD"] != "avx2"

    /// How many lanes the shim's exponential kernels run: 16, 8, or 4 for the portable Swift code.
    public static var exponentialLanes: Int { avx2 ? wideLanes : 4 }

    /// Whether attention over heads 16 wide without a mask or causality (the vision tower's) and
    /// over heads 4 or 8 wide without causality (the TPRL policy's) runs the shim's fused kernels
    /// (`attentionHead16`, `attentionNarrowHead`; `exponentialLanes` lanes) rather than OpenBLAS's
    /// products around the softmax: on CPUs with AVX2 unless `PRUNEGYM_SIMD=portable`.
    public static var fusedHeadAttention: Bool { avx2 }

    /// The shim kernels' lanes when `avx2`: 16 where `avx512`, else 8.
    static var wideLanes: Int { avx512 ? 16 : 8 }

    // Each kernel below runs eight lanes (only when `avx2`) or sixteen (only when `vectorLevel >=
    // 3`); by default as many as `avx512` says, and the tests pass `lanes` to hold the two to the
    // same bits.

    /// In-place softmax of a row with the shim's kernel.
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.softmaxRow: lanes must be 8 or 16")
        if lanes == 16 { prunegym_softmax_avx512(row, count) } else { prunegym_softmax_avx2(row, count) }
    }

    /// In-place softmax of the four rows `row`, `row + stride`, `row + 2·stride`, `row + 3·stride`
    /// with the shim's four-row kernel: each row gets `softmaxRow`'s bits, the four rows' chains
    /// of maxima and sums interleaved.
    @inline(__always)
    static func softmaxFourRows(_ row: UnsafeMutablePointer<Float>, stride: Int, count: Int, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.softmaxFourRows: lanes must be 8 or 16")
        if lanes == 16 { prunegym_softmax4_avx512(row, stride, count) } else { prunegym_softmax4_avx2(row, stride, count) }
    }

    /// e^x over `count` elements with the shim's general exponential, or with the softmax's
    /// (`nonpositive`: for x ≤ 0, −∞ and NaN only); for the tests.
    static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, nonpositive: Bool, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.exp: lanes must be 8 or 16")
        if lanes == 16 { prunegym_exp_avx512(x, y, count, nonpositive ? 1 : 0) } else { prunegym_exp_avx2(x, y, count, nonpositive ? 1 : 0) }
    }

    /// y = x·σ(a·x) over `count` elements with the shim's kernel.
    @inline(__always)
    static func sigmoidGated(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, scale a: Float, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.sigmoidGated: lanes must be 8 or 16")
        if lanes == 16 { prunegym_sigmoid_gated_avx512(x, y, count, a) } else { prunegym_sigmoid_gated_avx2(x, y, count, a) }
    }

    /// The backward of x·σ(a·x), dx = dy·(s + a·x·s·(1 − s)), over `count` elements (a multiple
    /// of 4) with the shim's kernel: the bits of `Tensor.sigmoidGated`'s four-lane Swift path.
    @inline(__always)
    static func sigmoidGatedBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int,
                                     scale a: Float, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.sigmoidGatedBackward: lanes must be 8 or 16")
        precondition(count % 4 == 0, "BLAS.sigmoidGatedBackward: count \(count) must be a multiple of 4")
        if lanes == 16 { prunegym_sigmoid_gated_backward_avx512(x, dy, dx, count, a) } else { prunegym_sigmoid_gated_backward_avx2(x, dy, dx, count, a) }
    }

    /// GELU (erf form) over `count` elements with the shim's kernel, Φ(x) to `cdf` when given.
    @inline(__always)
    static func geluErf(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, cdf: UnsafeMutablePointer<Float>?, count: Int, lanes: Int = wideLanes) {
        precondition(lanes == 8 || lanes == 16, "BLAS.geluErf: lanes must be 8 or 16")
        if lanes == 16 { prunegym_gelu_erf_avx512(x, y, cdf, count) } else { prunegym_gelu_erf_avx2(x, y, cdf, count) }
    }

    /// Attention without a mask for one head 16 wide with the shim's fused kernel (only when
    /// `avx2`; sixteen lanes only when `avx512`): `rows` query rows of `q` (stride `ldq`) against
    /// the head's s keys transposed to [16, s] (stride `ldk`) and its s value rows (stride `ldv`),
    /// into `rows` rows of `o` (stride `ldo`, 16 columns each); `scratch` holds 16 rows of stride
    /// `lds` ≥ s. Every product is summed in index order, so both lane counts give the same bits,
    /// which are those of OpenBLAS's AVX-512 kernels' two products around the softmax
    /// (`prunegym_attention_head16_avx512`).
    @inline(__always)
    static func attentionHead16(
        q: UnsafePointer<Float>, ldq: Int, keysTransposed: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
        o: UnsafeMutablePointer<Float>, ldo: Int, rows: Int, keys s: Int, scale: Float, scratch: UnsafeMutablePointer<Float>, lds: Int,
        lanes: Int = wideLanes
    ) {
        precondition(lanes == 8 || lanes == 16, "BLAS.attentionHead16: lanes must be 8 or 16")
        precondition(ldk >= s && lds >= s && ldq >= 16 && ldv >= 16 && ldo >= 16, "BLAS.attentionHead16: a stride below its row")
        if lanes == 16 {
            prunegym_attention_head16_avx512(q, ldq, keysTransposed, ldk, v, ldv, o, ldo, rows, s, scale, scratch, lds)
        } else {
            prunegym_attention_head16_avx2(q, ldq, keysTransposed, ldk, v, ldv, o, ldo, rows, s, scale, scratch, lds)
        }
    }

    /// Attention for one head 4 or 8 wide (`d`; the TPRL policy's heads) with the shim's fused
    /// kernel (only when `avx2`; sixteen lanes only when `avx512`): `rows` query rows of `q`
    /// (stride `ldq`) against the head's s keys and s values transposed to [d, s] (stride `ldt`),
    /// with `mask + i·ldm` added to row i's scores when `mask` is given, into `rows` rows of `o`
    /// (stride `ldo`, d columns each); `scratch` holds 4 rows of stride `lds` ≥ s. Both lane counts
    /// give the same bits, which are those of OpenBLAS 0.3's AVX-512 kernels' two products around
    /// the softmax (`prunegym_attention_narrow_avx512`).
    @inline(__always)
    static func attentionNarrowHead(
        q: UnsafePointer<Float>, ldq: Int, keysTransposed: UnsafePointer<Float>, valuesTransposed: UnsafePointer<Float>, ldt: Int,
        mask: UnsafePointer<Float>?, ldm: Int, o: UnsafeMutablePointer<Float>, ldo: Int, rows: Int, keys s: Int, width d: Int,
        scale: Float, scratch: UnsafeMutablePointer<Float>, lds: Int, lanes: Int = wideLanes
    ) {
        precondition(lanes == 8 || lanes == 16, "BLAS.attentionNarrowHead: lanes must be 8 or 16")
        precondition(d == 4 || d == 8, "BLAS.attentionNarrowHead: heads must be 4 or 8 wide, not \(d)")
        precondition(ldt >= s && lds >= s && ldq >= d && ldo >= d, "BLAS.attentionNarrowHead: a stride below its row")
        if lanes == 16 {
            prunegym_attention_narrow_avx512(q, ldq, keysTransposed, valuesTransposed, ldt, mask, ldm, o, ldo, rows, s, d, scale, scratch, lds)
        } else {
            prunegym_attention_narrow_avx2(q, ldq, keysTransposed, valuesTransposed, ldt, mask, ldm, o, ldo, rows, s, d, scale, scratch, lds)
        }
    }
}

/// Which of OpenBLAS's kernels run, and the choice when OpenBLAS does not recognise the CPU.
///
/// OpenBLAS (built with `DYNAMIC_ARCH`, as Debian's is) picks its kernels once, when the library
/// loads, from the CPU's model number. A CPU newer than the library falls back to generic ones:
/// OpenBLAS 0.3.21 runs its SSE3 `Prescott` kernels on a 2023 Xeon with AVX-512, several times
/// slower than its `Cooperlake` ones and summing in another order. The command line and the
/// benchmarks restart themselves once with `OPENBLAS_CORETYPE` set to the kernels that match the
/// CPU's vector instructions (`restartWithMatchingKernels`); setting `OPENBLAS_CORETYPE` yourself
/// keeps your choice.
extension BLAS {
    /// The kernels OpenBLAS runs (`openblas_get_corename`): `Cooperlake`, `Haswell`, `Zen`, ….
    public static var kernels: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build (`openblas_get_config`): release, options and the kernels it runs.
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// PruneGym's worker threads, the caller included (`PRUNEGYM_THREADS`; default: the active cores, at most 8).
    public static var workerCount: Int { Parallel.threadCount }

    /// `vectorLevel` in words.
    public static var vectorLevelDescription: String {
        ["SSE only", "AVX", "AVX2 and FMA", "AVX-512", "AVX-512 with BF16"][max(0, min(vectorLevel, 4))]
    }

    /// This CPU's vector instructions as a level of OpenBLAS's kernels: 0 SSE only, 1 AVX, 2 AVX2
    /// and FMA, 3 AVX-512, 4 AVX-512 with BF16 (0 off x86-64).
    public static let vectorLevel = Int(prunegym_vector_level())

    /// The kernels named for each level of `vectorLevel` (index 0: none to ask for).
    static let kernelsForLevel: [String?] = [nil, "Sandybridge", "Haswell", "SkylakeX", "Cooperlake"]

    /// The level of OpenBLAS 0.3.x's x86-64 kernels, by `openblas_get_corename`'s name; nil for a
    /// name not listed (another architecture, a newer release), which is then never overridden.
    static func level(ofKernels name: String) -> Int? {
        switch name.lowercased() {
        case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
             "nehalem", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat", "generic":
            return 0
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return 1
        case "haswell", "zen", "excavator": return 2
        case "skylakex": return 3
        case "cooperlake", "sapphirerapids": return 4
        default: return nil
        }
    }

    /// The kernels to ask for when OpenBLAS chose `chosen` on a CPU of `vectorLevel` `level`: the
    /// level's own kernels when `chosen` is a known name of a lower level, else nil (the choice
    /// stands).
    public static func matchingKernels(chosen: String, vectorLevel level: Int) -> String? {
        guard let chosenLevel = self.level(ofKernels: chosen), level > chosenLevel,
              level < kernelsForLevel.count, let name = kernelsForLevel[level] else { return nil }
        return name
    }

    /// Restarts this process (`/proc/self/exe`, the same arguments) with `OPENBLAS_CORETYPE` set to
    /// `matchingKernels` when OpenBLAS chose kernels below the CPU's vector instructions, saying so
    /// on stderr; returns without doing anything when the kernels match, when `OPENBLAS_CORETYPE` is
    /// set (the user's choice, or this restart's), or off Linux. Call it first thing in `main`,
    /// before any thread starts. If the restart fails, the process goes on with OpenBLAS's choice.
    public static func restartWithMatchingKernels() {
        #if os(Linux)
        guard getenv("OPENBLAS_CORETYPE") == nil else { return }
        let chosen = kernels
        guard let wanted = matchingKernels(chosen: chosen, vectorLevel: vectorLevel) else { return }
        FileHandle.standardError.write(Data(("note: OpenBLAS does not recognise this CPU and chose its \(chosen) kernels; "
            + "restarting with OPENBLAS_CORETYPE=\(wanted), the kernels for its vector instructions "
            + "(set OPENBLAS_CORETYPE to choose others)\n").utf8))
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        FileHandle.standardError.write(Data("note: the restart failed (\(String(cString: strerror(errno)))); going on with the \(chosen) kernels\n".utf8))
        #endif
    }
}

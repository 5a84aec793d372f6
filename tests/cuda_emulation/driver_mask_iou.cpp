// Driver for the sanitizer runs of mask_iou.cu (compiled after cuda_emulation.h and the kernels): packs a
// few masks with pack_bits and counts their intersections with popcount_gram, launched as
// matrixnms/backends/_cupy.py launches them, into buffers of exactly the launched sizes (so an access past an
// end is a heap-buffer-overflow), and checks every count against a plain loop. Exit 0 and "ok" when equal.
#include <cstdint>
#include <vector>

int main(int argc, char** argv) {
    const long long n = argc > 1 ? std::atoll(argv[1]) : 17;  // rows: a partial second 16-row tile
    const long long pixels = argc > 2 ? std::atoll(argv[2]) : 3 * 350;  // 33 words: two 32-word chunks
    const long long words = (pixels + 31) / 32;
    const long long source_rows = n + 3;
    std::vector<unsigned char> masks(source_rows * pixels);
    unsigned long long state = 12345;
    for (auto& m : masks) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        m = (state >> 60) < 5;  // about 30% of the pixels on
    }
    std::vector<long long> rows(n);
    for (long long r = 0; r < n; ++r) rows[r] = (r * 7 + 2) % source_rows;  // a gather, as masks[order]
    std::vector<unsigned int> packed(n * words);
    const unsigned threads = 256;  // _cupy._THREADS
    const long long total = n * words * 32;
    emu::launch(dim3{unsigned((total + threads - 1) / threads), 1, 1}, dim3{threads, 1, 1}, 60.0,
                [&] { pack_bits(masks.data(), rows.data(), n, pixels, words, packed.data()); });
    std::vector<int> out(n * n);
    const unsigned tiles = unsigned((n + TILE - 1) / TILE);
    emu::launch(dim3{tiles, tiles, 1}, dim3{TILE, TILE, 1}, 60.0,
                [&] { popcount_gram(packed.data(), n, packed.data(), n, words, out.data()); });
    long long wrong = 0;
    for (long long i = 0; i < n; ++i)
        for (long long j = 0; j < n; ++j) {
            int expected = 0;
            for (long long p = 0; p < pixels; ++p)
                expected += masks[rows[i] * pixels + p] && masks[rows[j] * pixels + p];
            wrong += out[i * n + j] != expected;
        }
    if (wrong) {
        std::printf("%lld of %lld counts differ\n", wrong, n * n);
        return 1;
    }
    std::printf("ok: %lld x %lld counts over %lld pixels\n", n, n, pixels);
    return 0;
}

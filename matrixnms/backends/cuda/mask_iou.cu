// Exact pairwise intersections of binary masks on the GPU, for matrixnms/backends/_cupy.py.
//
// pack_bits: one warp turns 32 consecutive pixels of a mask into one 32-bit word with a ballot, so every
//     byte is read exactly once, coalesced.
// popcount_gram: out[i, j] = sum_w popc(a[i, w] & b[j, w]), a tiled "matrix product" in which multiply-add
//     is and-popcount: each 16 x 16 block of outputs stages 16 rows of a and of b, 32 words at a time, in
//     shared memory. Counts are exact (int32 holds any mask below 2**31 pixels).

#define FULL_MASK 0xffffffffu
#define TILE 16
#define CHUNK 32

extern "C" __global__ void pack_bits(const unsigned char* masks, const long long* rows, long long n_rows,
                                     long long pixels, long long words, unsigned int* packed) {
    long long thread = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long warp = thread / 32;
    int lane = threadIdx.x % 32;
    long long r = warp / words;
    long long pixel = (warp % words) * 32 + lane;
    bool on = false;
    if (r < n_rows && pixel < pixels) {
        on = masks[rows[r] * pixels + pixel] != 0;
    }
    // every lane takes part in the ballot, including those past the end
    unsigned int bits = __ballot_sync(FULL_MASK, on);
    if (lane == 0 && r < n_rows) {
        packed[warp] = bits;
    }
}

extern "C" __global__ void popcount_gram(const unsigned int* a, long long n_a, const unsigned int* b,
                                         long long n_b, long long words, int* out) {
    // +1 column: the threads of a warp read different rows of tile_b without bank conflicts
    __shared__ unsigned int tile_a[TILE][CHUNK + 1];
    __shared__ unsigned int tile_b[TILE][CHUNK + 1];
    long long first_a = (long long)blockIdx.y * TILE;
    long long first_b = (long long)blockIdx.x * TILE;
    int flat = threadIdx.y * TILE + threadIdx.x;
    int count = 0;
    for (long long w0 = 0; w0 < words; w0 += CHUNK) {
        for (int slot = flat; slot < TILE * CHUNK; slot += TILE * TILE) {
            int row = slot / CHUNK;
            int col = slot % CHUNK;
            long long w = w0 + col;
            long long ra = first_a + row;
            long long rb = first_b + row;
            tile_a[row][col] = (ra < n_a && w < words) ? a[ra * words + w] : 0u;
            tile_b[row][col] = (rb < n_b && w < words) ? b[rb * words + w] : 0u;
        }
        __syncthreads();
        for (int col = 0; col < CHUNK; ++col) {
            count += __popc(tile_a[threadIdx.y][col] & tile_b[threadIdx.x][col]);
        }
        __syncthreads();
    }
    long long i = first_a + threadIdx.y;
    long long j = first_b + threadIdx.x;
    if (i < n_a && j < n_b) {
        out[i * n_b + j] = count;
    }
}

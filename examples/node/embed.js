// libsimclr from Node.js through the koffi FFI (no compiler, no addon build).
//
// Loads libsimclr.so.0 (env SIMCLR_LIBRARY, else ../../lib/), checks its
// version, round-trips a tensor, shows an error with its message, and - once
// the library has modules - extracts embeddings for a few images through a
// ResNet-18 (Fashion-MNIST test images when the data set layer and the data
// are there, else synthetic images). Exits 0 and prints "node embed: ok".
'use strict';

const path = require('path');
const fs = require('fs');
const koffi = require('koffi');

const LIB = process.env.SIMCLR_LIBRARY || path.join(__dirname, '..', '..', 'lib', 'libsimclr.so.0');
const FMNIST = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz';
const lib = koffi.load(LIB);

koffi.opaque('simclr_context');
koffi.opaque('simclr_tensor');
koffi.opaque('simclr_module');
koffi.opaque('simclr_dataset');

// Declares a C function; returns null when this build does not export it.
function declare(proto) {
  try {
    return lib.func(proto);
  } catch (e) {
    if (/Cannot find function/.test(e.message)) return null;
    throw e; // a typo in a prototype must not pass for a missing symbol
  }
}

const c = {
  version_number: declare('unsigned int simclr_version_number(void)'),
  version_string: declare('const char *simclr_version_string(void)'),
  last_error: declare('const char *simclr_last_error(void)'),
  status_string: declare('const char *simclr_status_string(int status)'),
  context_create: declare('int simclr_context_create(const char *backend, int n_threads, void *allocator, _Out_ simclr_context **out)'),
  context_destroy: declare('void simclr_context_destroy(simclr_context *ctx)'),
  tensor_create: declare('int simclr_tensor_create(simclr_context *ctx, int dtype, int ndim, const int64_t *shape, _Out_ simclr_tensor **out)'),
  tensor_destroy: declare('void simclr_tensor_destroy(simclr_tensor *t)'),
  tensor_bytes: declare('size_t simclr_tensor_bytes(simclr_tensor *t)'),
  tensor_copy_from: declare('int simclr_tensor_copy_from(simclr_tensor *t, const void *src, size_t bytes)'),
  tensor_copy_to: declare('int simclr_tensor_copy_to(simclr_tensor *t, _Out_ void *dst, size_t bytes)'),
  tensor_reshape: declare('int simclr_tensor_reshape(simclr_tensor *t, int ndim, const int64_t *shape)'),
  resnet_create: declare('int simclr_resnet_create_v2(simclr_context *ctx, int depth, int64_t width, int64_t in_channels, int stem, uint64_t seed, _Out_ simclr_module **out)'),
  module_destroy: declare('void simclr_module_destroy(simclr_module *m)'),
  module_output_dim: declare('int64_t simclr_module_output_dim(simclr_module *m)'),
  module_arch: declare('const char *simclr_module_arch(simclr_module *m)'),
  module_forward: declare('int simclr_module_forward(simclr_module *m, simclr_tensor *x, int mode, simclr_tensor *y)'),
  dataset_open_idx: declare('int simclr_dataset_open_idx(simclr_context *ctx, const char *images, const char *labels, _Out_ simclr_dataset **out)'),
  dataset_destroy: declare('void simclr_dataset_destroy(simclr_dataset *ds)'),
  dataset_batch: declare('int simclr_dataset_batch(simclr_dataset *ds, const int64_t *indices, int64_t n, simclr_tensor *out)'),
};
const F32 = 0, U8 = 1, EVAL = 0, STEM_CIFAR = 0, E_SHAPE = 2;

class SimclrError extends Error {
  constructor(status, fn) {
    super(`${fn}: [${c.status_string(status)}] ${c.last_error()}`);
    this.status = status;
  }
}
function check(status, fn) {
  if (status !== 0) throw new SimclrError(status, fn);
}

function tensor(ctx, dtype, shape) {
  const out = [null];
  check(c.tensor_create(ctx, dtype, shape.length, BigInt64Array.from(shape.map(BigInt)), out), 'tensor_create');
  return out[0];
}

function syntheticImages(n, h, w) {
  const px = new Uint8Array(n * h * w);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) px[(i * h + y) * w + x] = ((x * (i + 1) + y * 3) * 17) & 255;
  return px;
}

function main() {
  const v = c.version_number();
  if (Math.floor(v / 10000) !== 0 || Math.floor(v / 100) % 100 < 1)
    throw new Error(`libsimclr ${c.version_string()} is not 0.x with x >= 1`);
  console.log(`libsimclr ${c.version_string()} from ${LIB}`);

  const ctxOut = [null];
  check(c.context_create('cpu', 0, null, ctxOut), 'context_create');
  const ctx = ctxOut[0];
  const owned = [];
  try {
    // Tensor round trip.
    const t = tensor(ctx, F32, [2, 3]);
    owned.push(() => c.tensor_destroy(t));
    const src = Float32Array.from([1, 2, 3, 4, 5, 6]);
    check(c.tensor_copy_from(t, src, src.byteLength), 'tensor_copy_from');
    const back = new Float32Array(6);
    check(c.tensor_copy_to(t, back, back.byteLength), 'tensor_copy_to');
    if (back.join(',') !== src.join(',')) throw new Error('tensor round trip differs');
    // An error, with the library's message.
    const st = c.tensor_reshape(t, 1, BigInt64Array.from([7n]));
    if (st !== E_SHAPE) throw new Error('reshape to 7 elements should fail with SIMCLR_E_SHAPE');
    console.log(`expected error: ${c.last_error()}`);

    if (!c.resnet_create || !c.module_forward) {
      console.log('resnet: not in this build of the library yet (skipping embeddings)');
    } else {
      const n = 4, h = 28, w = 28;
      let pixels;
      if (c.dataset_open_idx && fs.existsSync(FMNIST)) {
        const dsOut = [null];
        check(c.dataset_open_idx(ctx, FMNIST, null, dsOut), 'dataset_open_idx');
        owned.push(() => c.dataset_destroy(dsOut[0]));
        const imgs = tensor(ctx, U8, [n, h, w, 1]);
        owned.push(() => c.tensor_destroy(imgs));
        check(c.dataset_batch(dsOut[0], BigInt64Array.from([0n, 1n, 2n, 3n]), n, imgs), 'dataset_batch');
        pixels = new Uint8Array(n * h * w);
        check(c.tensor_copy_to(imgs, pixels, pixels.byteLength), 'tensor_copy_to');
        console.log('images: Fashion-MNIST test set 0..3');
      } else {
        pixels = syntheticImages(n, h, w);
        console.log('images: synthetic');
      }
      const mOut = [null];
      check(c.resnet_create(ctx, 18, 8, 1, STEM_CIFAR, 7, mOut), 'resnet_create');
      const m = mOut[0];
      owned.push(() => c.module_destroy(m));
      const d = Number(c.module_output_dim(m));
      // U8 [N, H, W, 1] -> F32 [N, 1, H, W] in [0, 1] (single channel: same order).
      const x = tensor(ctx, F32, [n, 1, h, w]);
      owned.push(() => c.tensor_destroy(x));
      const xf = Float32Array.from(pixels, (p) => p / 255);
      check(c.tensor_copy_from(x, xf, xf.byteLength), 'tensor_copy_from');
      const y = tensor(ctx, F32, [n, d]);
      owned.push(() => c.tensor_destroy(y));
      check(c.module_forward(m, x, EVAL, y), 'module_forward');
      const emb = new Float32Array(n * d);
      check(c.tensor_copy_to(y, emb, emb.byteLength), 'tensor_copy_to');
      console.log(`${c.module_arch(m)}: embeddings [${n}, ${d}]`);
      for (let i = 0; i < n; i++) {
        const row = emb.subarray(i * d, (i + 1) * d);
        if (!row.every(Number.isFinite)) throw new Error('non-finite embedding');
        const norm = Math.sqrt(row.reduce((s, e) => s + e * e, 0));
        console.log(`  image ${i}: |e| = ${norm.toFixed(4)}  e[0..3] = ${Array.from(row.subarray(0, 4), (e) => e.toFixed(4)).join(' ')}`);
      }
    }
  } finally {
    // Destroy in reverse order of creation, the context last.
    for (const free of owned.reverse()) free();
    c.context_destroy(ctx);
  }
  console.log('node embed: ok');
}

try {
  main();
} catch (e) {
  console.error(`node embed: FAILED: ${e.message}`);
  process.exit(1);
}

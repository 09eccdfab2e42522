// Runs an ONNX model with ONNX Runtime (npm's onnxruntime-node) for Retort's tests and `retort bench`.
//   node scripts/ort_run.js MODEL.onnx INPUTS.json OUTPUTS.json [REPS] [THREADS]
// INPUTS.json: {"input_ids": {"dims": [B, T], "data": [...]}, ...} (int64 inputs).
// OUTPUTS.json gets every output as {"dims": [...], "data": [...]}, and with REPS > 0 also
// "latency_ms": each timed run's wall time (after 3 untimed runs).
// The module is found through RETORT_ORT_MODULES (a node_modules folder) or Node's usual lookup.
'use strict';
const fs = require('fs');
const path = require('path');

const modules = process.env.RETORT_ORT_MODULES;
const ort = require(modules ? path.join(modules, 'onnxruntime-node') : 'onnxruntime-node');

async function main() {
  const [modelPath, inputsPath, outputsPath, repsArg, threadsArg] = process.argv.slice(2);
  if (!modelPath || !inputsPath || !outputsPath) {
    console.error('usage: node ort_run.js MODEL.onnx INPUTS.json OUTPUTS.json [REPS] [THREADS]');
    process.exit(2);
  }
  const options = {graphOptimizationLevel: 'all'};
  if (threadsArg) {
    options.intraOpNumThreads = Number(threadsArg);
    options.interOpNumThreads = 1;
  }
  const session = await ort.InferenceSession.create(modelPath, options);
  const raw = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const feeds = {};
  for (const [name, t] of Object.entries(raw)) {
    feeds[name] = new ort.Tensor('int64', BigInt64Array.from(t.data.map(BigInt)), t.dims);
  }
  const result = await session.run(feeds);
  const out = {};
  for (const [name, t] of Object.entries(result)) out[name] = {dims: t.dims, data: Array.from(t.data)};
  const reps = Number(repsArg || 0);
  if (reps > 0) {
    for (let i = 0; i < 3; ++i) await session.run(feeds);
    out.latency_ms = [];
    for (let i = 0; i < reps; ++i) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      out.latency_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  fs.writeFileSync(outputsPath, JSON.stringify(out));
}

main().catch((e) => {
  console.error(`ort_run: ${e.message || e}`);
  process.exit(1);
});

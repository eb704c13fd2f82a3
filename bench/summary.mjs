#!/usr/bin/env node
/**
 * Renders bench/results.json as a Markdown table (one row a figure: the measured value, the target,
 * pass or fail). `node bench/summary.mjs` prints it; `--readme` also replaces the table between the
 * `<!-- bench-figures -->` markers of README.md, so the README quotes the last run, not a guess.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const results = JSON.parse(readFileSync(join(root, 'bench', 'results.json'), 'utf8'));

const num = (x, digits = 2) => (typeof x === 'number' ? x.toFixed(digits) : '?');

/** The measured value of one figure, in the words its target uses. */
function measured(key, f) {
  if (key === 'packGzip')
    return `${num(f.speedup)}x faster (${num(f.toolMedian, 1)} s vs ${num(f.oursMedian, 1)} s)`;
  if (typeof f.peakRssMB === 'number') return `${num(f.peakRssMB, 0)} MB`;
  if (key === 'redeployConfig') {
    // From the medians (two decimals: 4.96% is not 5.0%).
    const pct =
      f.oursMedian && f.fullDeploySeconds ? (100 * f.oursMedian) / f.fullDeploySeconds : f.percentOfFull;
    return `${num(pct, 2)}% of the full deploy (${num(f.oursMedian, 3)} s vs ${num(f.fullDeploySeconds, 2)} s)`;
  }
  if (typeof f.medianMs === 'number') return `${num(f.medianMs, 1)} ms`;
  if (key === 'switchParity') return `${num(f.ratio)}x`;
  if (key === 'registryDownload')
    return `${num(f.ratio)}x (${num(f.registryMedianMiBps, 0)} vs ${num(f.nginxMedianMiBps, 0)} MiB/s)`;
  if (key === 'registryRss') return `${num(f.sessionPeakMB ?? f.downloadPeakMB, 0)} MB`;
  if (key === 'registryPublish')
    return `+${num(f.growthMB, 0)} MB RSS (peak ${num(f.serverPeakRssMB, 0)} MB)`;
  if (key === 'registrySearch') return `median ${num(f.medianMs, 1)} ms`;
  if (key === 's3PeakRss') return `publish ${num(f.publishMB, 0)} MB, deploy ${num(f.deployMB, 0)} MB`;
  if (key === 'registryIncrementalPublish' || key === 'registryIncrementalDeploy')
    return `${num(f.bytesRatio)}x the file's bytes (${num(f.seconds, 2)} s vs ${num(f.fullOperationSeconds, 2)} s in full)`;
  if (key === 's3IncrementalPublish' || key === 's3IncrementalDeploy')
    return `${num(f.bytesRatio)}x the file's bytes, ${num(f.timeRatio)}x the time`;
  if (key === 's3Republish') return `${f.newBlobBytesInBucket ?? '?'} new content bytes`;
  if (typeof f.ratio === 'number')
    return `${num(f.ratio)}x (${num(f.oursMedian, 2)} s vs ${num(f.toolMedian, 2)} s)`;
  return '?';
}

const rows = Object.entries(results.figures ?? {}).map(
  ([key, f]) => `| \`${key}\` | ${measured(key, f)} | ${f.target ?? ''} | ${f.pass ? 'pass' : '**fail**'} |`,
);
const when = Object.entries(results.measured ?? {})
  .map(([group, date]) => `${group} ${date}`)
  .join(', ');
const table = [
  `Measured ${results.date ?? '?'}${when ? ` (groups: ${when})` : ''} on ${results.machine?.cores ?? '?'} cores, ${results.machine?.cpu ?? '?'}, Node ${results.machine?.node ?? '?'}.`,
  '',
  '| figure | measured | target | |',
  '| --- | --- | --- | --- |',
  ...rows,
].join('\n');

if (process.argv.includes('--readme')) {
  const path = join(root, 'README.md');
  const readme = readFileSync(path, 'utf8');
  const marker = '<!-- bench-figures -->';
  const start = readme.indexOf(marker);
  const end = readme.indexOf(marker, start + marker.length);
  if (start < 0) throw new Error('README.md has no <!-- bench-figures --> marker');
  const before = readme.slice(0, start + marker.length);
  const after = end < 0 ? readme.slice(start + marker.length) : readme.slice(end + marker.length);
  writeFileSync(path, `${before}\n\n${table}\n\n${marker}${after}`);
} else {
  console.log(table);
}

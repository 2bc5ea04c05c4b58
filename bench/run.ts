/**
 * `npm run bench`: every benchmark section, in one run, inside a private sandbox (so the
 * namespaces, links and firewall tables a section makes never touch the host).
 *
 *   node dist/bench/run.js                 all sections, in the order below
 *   node dist/bench/run.js kernel          only the named sections
 *   NSNET_BENCH_SECTIONS=kernel,bridge …   the same, from the environment
 *
 * A section is a module beside this file exporting `run(): Promise<Section | void>`
 * (bench/section.ts): returning a Section has it printed by the shared printer; returning
 * nothing means the section printed its own report. To add one, add a line to SECTIONS.
 * Benchmarks are not tests: a section that fails is reported and the others still run.
 */
import { enterSandbox } from '../src/sandbox/sandbox.js';
enterSandbox();

const { printSection } = await import('./section.js');
type SectionModule = import('./section.js').SectionModule;

const SECTIONS: Array<{ name: string; what: string }> = [
  { name: 'kernel', what: 'namespaces + veth + addresses + default route: nsnet vs a loop of ip commands (issue 2)' },
  { name: 'bridge', what: 'attach/detach namespaces to a bridge network: nsnet vs ip script, CNI, netavark (issue 3)' },
  { name: 'dns', what: 'embedded DNS: qps and p50/p99 for local and cached forwarded names, memory with 1,000 names; vs aardvark-dns (issue 5)' },
  { name: 'policies', what: 'a new connection through 10 / 100 / 1,000 policies, adding one: nsnet compiled verdict map vs iptables rule per policy (issue 4)' },
  { name: 'cluster', what: 'multi-host: convergence at 3/10/30 hosts, agent memory, iperf3 over host-gw and VXLAN vs one bridge (issue 7)' },
  { name: 'ports', what: 'published ports at 10 / 1,000 / 10,000: add/remove one mapping, connect latency through DNAT; nsnet vs iptables DNAT rules (issue 4)' },
  { name: 'macvlan', what: 'macvlan: attach latency vs bridge (and an ip script); container-to-container throughput (iperf3) and RTT over macvlan vs bridge vs veth pair (issue 8)' },
  { name: 'cni', what: 'CNI ADD/DEL of 200 containers, one plugin process per call, with and without a port: nsnet plugin (alone, + serve) vs bridge+host-local(+portmap) and netavark (issue 6)' },
];

const asked = [...process.argv.slice(2), ...(process.env.NSNET_BENCH_SECTIONS?.split(',') ?? [])].filter(Boolean);
const unknown = asked.filter((a) => !SECTIONS.some((s) => s.name === a));
if (unknown.length) {
  console.error(`unknown section(s): ${unknown.join(', ')}; known: ${SECTIONS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const chosen = asked.length ? SECTIONS.filter((s) => asked.includes(s.name)) : SECTIONS;

console.log(`nsnet benchmarks — in a private sandbox (unshare --net --mount), ${new Date().toISOString()}`);
console.log(`node ${process.version}; sections: ${chosen.map((s) => s.name).join(', ')}`);

let failed = 0;
for (const s of chosen) {
  const started = performance.now();
  try {
    // A computed specifier: sections are loaded (and type-checked) on their own.
    const mod = (await import(`./${s.name}.js`)) as SectionModule;
    const result = await mod.run();
    if (result) printSection(result);
  } catch (e) {
    failed++;
    console.log(`\n== ${s.name}: FAILED after ${((performance.now() - started) / 1000).toFixed(1)} s ==\n${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  }
}
process.exitCode = failed ? 1 : 0;

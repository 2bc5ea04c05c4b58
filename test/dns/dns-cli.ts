/**
 * `nsnet dns …` for the tests while src/cli/main.ts does not register the dns commands
 * yet: the same commands (src/cli/dns.ts) under a program with main.ts's global option.
 * Once main.ts calls registerDnsCommands, test/dns/world.ts uses the real CLI instead.
 *
 *   node dist/test/dns/dns-cli.js dns status --json
 */
import { Command } from 'commander';
import { registerDnsCommands } from '../../src/cli/dns.js';

const program = new Command('nsnet').option('--state-dir <dir>', 'state directory');
registerDnsCommands(program);
await program.parseAsync(process.argv);

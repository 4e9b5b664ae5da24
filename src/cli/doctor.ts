import type { Command } from 'commander';
import { parseHostPort } from '../config/net.js';
import { formatFinding, summary } from '../doctor/report.js';
import { runDoctor } from '../doctor/run.js';
import { CliError, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, type ConfigFlag } from './common.js';
import { configPath } from './configLookup.js';

interface DoctorFlags extends ConfigFlag {
  dnsServer?: string;
  timeout: string;
  from?: string;
  offline?: boolean;
  json?: boolean;
}

/** `relaybox doctor`: one command a technician runs on site; every line OK, WARN or FAIL with the fix. */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check config, hostname, clock, spool, every upstream (DNS, TCP, TLS, EHLO, AUTH) and SPF/DMARC; exit 1 on any FAIL, 2 when the configuration does not load')
    .option('--config <file>', 'configuration file')
    .option('--dns-server <host:port>', 'ask this DNS server instead of the system resolver (also $RELAYBOX_DNS_SERVER)')
    .option('--timeout <seconds>', 'per network step', '10')
    .option('--from <address>', 'a sender address to check when smtp.rewrite.envelope_from is not set')
    .option('--offline', 'skip DNS and upstream probes')
    .option('--json', 'print the findings as JSON')
    .action(async (flags: DoctorFlags) => {
      const dnsServer = flags.dnsServer ?? process.env.RELAYBOX_DNS_SERVER ?? undefined;
      if (dnsServer && !parseHostPort(dnsServer) && !/^[\d.]+$|^[0-9a-f:]+$/i.test(dnsServer)) {
        throw new CliError(`--dns-server: expected host:port like 127.0.0.1:5353, got "${dnsServer}"`, EXIT_USAGE);
      }
      const seconds = Number(flags.timeout);
      if (!(seconds > 0)) throw new CliError(`--timeout: expected seconds, got "${flags.timeout}"`, EXIT_USAGE);
      if (flags.from && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(flags.from)) throw new CliError(`--from: expected an address, got "${flags.from}"`, EXIT_USAGE);

      const file = configPath(flags.config);
      const { findings, configValid } = await runDoctor({
        configFile: file,
        dnsServer,
        timeoutMs: seconds * 1000,
        from: flags.from,
        offline: flags.offline ?? false,
      });
      const text = flags.json
        ? `${JSON.stringify({ config: file, findings }, null, 2)}\n`
        : `${findings.map(formatFinding).join('\n')}\nrelaybox doctor: ${summary(findings)}\n`;
      // A configuration that does not load is exit 2 like every other command; any other FAIL is 1.
      const code = !configValid ? EXIT_USAGE : findings.some((f) => f.level === 'FAIL') ? EXIT_RUNTIME : EXIT_OK;
      // Exit once the report is out: a probe's half-closed socket must not keep the technician waiting.
      process.stdout.write(text, () => process.exit(code));
    });
}

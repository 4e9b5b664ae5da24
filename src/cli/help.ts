import type { Command } from 'commander';
import { CONFIG_LOOKUP } from './configLookup.js';

/** Two examples for each command's --help, by the command's full name. */
const EXAMPLES: Record<string, [string, string]> = {
  serve: ['relaybox serve                                  # /etc/relaybox/relaybox.yaml, as the service runs', 'relaybox serve --config config/relaybox.example.yaml   # what make run starts'],
  'check-config': ['relaybox check-config', 'relaybox check-config --config /boot/firmware/relaybox.yaml'],
  'hash-password': ['relaybox hash-password                          # asks for it', "printf '%s' \"$PASSWORD\" | relaybox hash-password"],
  'queue list': ['relaybox queue list --status deferred', 'relaybox queue list --json --limit 20'],
  'queue show': ['relaybox queue show 42', 'relaybox queue show 42 --json'],
  'queue retry': ['relaybox queue retry 42', 'relaybox queue retry --all-deferred   # every deferred message, as: queue flush'],
  'queue flush': ['relaybox queue flush                  # as postqueue -f', 'relaybox queue list --status deferred && relaybox queue flush'],
  'queue drop': ['relaybox queue drop 42', 'RELAYBOX_CONFIG=./relaybox.yaml relaybox queue drop 42'],
  'send-test': ['relaybox send-test --to you@example.com', 'relaybox send-test --to you@example.com --upstream google --from scanner@example.com'],
  'log export': ['relaybox log export --since 24h > today.csv', 'relaybox log export --since 2026-11-01 --format json | head'],
  oauth: ['relaybox oauth google', 'relaybox oauth microsoft --device --upstream m365'],
  doctor: ['relaybox doctor', 'relaybox doctor --offline --json'],
};

/**
 * Every command's --help ends with two examples and, where it reads a configuration, the order
 * in which the file is looked for; added here, in one place, over the commands as registered.
 */
export function addHelpTexts(program: Command): void {
  program.addHelpText('after', `\n${CONFIG_LOOKUP}\n\nExit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.\nOne command's examples: relaybox <command> --help`);
  const visit = (command: Command, prefix: string) => {
    for (const sub of command.commands) {
      const name = `${prefix}${sub.name()}`;
      const examples = EXAMPLES[name];
      const config = sub.options.some((o) => o.long === '--config');
      const text = [
        ...(examples ? ['', 'Examples:', ...examples.map((e) => `  ${e}`)] : []),
        ...(config ? ['', CONFIG_LOOKUP] : []),
      ];
      if (text.length > 0) sub.addHelpText('after', text.join('\n'));
      visit(sub, `${name} `);
    }
  };
  visit(program, '');
}

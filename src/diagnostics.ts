/**
 * Observability through node:diagnostics_channel (STYLE.md): layers publish events on
 * channels named `nsnet:<layer>:<event>`; `--debug` (or NSNET_DEBUG=1) subscribes and
 * prints them to stderr. Publishing to a channel nobody listens to costs nothing.
 */
import diagnostics from 'node:diagnostics_channel';

const channels = new Map<string, diagnostics.Channel>();

export function channel(name: string): diagnostics.Channel {
  let c = channels.get(name);
  if (!c) {
    c = diagnostics.channel(`nsnet:${name}`);
    channels.set(name, c);
  }
  return c;
}

export function publish(name: string, data: object): void {
  const c = channel(name);
  if (c.hasSubscribers) c.publish(data);
}

/** Prints every event of the given channel names to stderr (used by --debug). */
export function traceToStderr(names: readonly string[]): void {
  for (const n of names) {
    diagnostics.subscribe(`nsnet:${n}`, (data) => {
      process.stderr.write(`[nsnet:${n}] ${JSON.stringify(data)}\n`);
    });
  }
}

/**
 * Home Assistant MQTT discovery: the retained configs under
 * `<discovery_prefix>/<component>/<node_id>/<object_id>/config` that make one device,
 * "relaybox <node_id>", with sensors read from the `<p>/status` JSON. Pure: builds, never publishes.
 */

export interface DiscoveryInput {
  discoveryPrefix: string;
  nodeId: string;
  /** `<topic_prefix>/<node_id>`: state from `<base>/status`, availability from `<base>/availability`. */
  base: string;
  version: string;
  upstreams: string[];
  /** The console's address, when a browser elsewhere can reach it: HA's "Visit" link on the device. */
  configurationUrl?: string;
}

export interface DiscoveryMessage {
  topic: string;
  /** JSON; retained. */
  payload: string;
}

interface SensorSpec {
  object: string;
  name: string;
  template: string;
  extra?: Record<string, unknown>;
}

/** HA keeps at most 255 characters of a state; an upstream's reply can be longer. */
const LAST_ERROR_TEMPLATE =
  "{% set failing = value_json.upstreams.values() | selectattr('last_error_at') | sort(attribute='last_error_at') | list %}" +
  "{{ ((failing | last).last_error or '')[:250] if failing else '' }}";

/** HA shows an MQTT enum's state as it comes (no translations for MQTT entities): words, not `ok`. */
const STATE_WORDS = { ok: 'OK', degraded: 'Degraded', down: 'Down' };
const STATE_TEMPLATE = `{{ ${JSON.stringify(STATE_WORDS)}.get(value_json.state, None) }}`;

// The names say what each counts, so that no two read alike: "Failed" is what waits for a person
// now, "Failed recipients (total)" a counter since the spool was made.
const SENSORS: SensorSpec[] = [
  { object: 'state', name: 'State', template: STATE_TEMPLATE, extra: { device_class: 'enum', options: Object.values(STATE_WORDS), icon: 'mdi:email-sync-outline' } },
  { object: 'queued', name: 'Sending now', template: '{{ value_json.queue.queued }}', extra: { state_class: 'measurement', icon: 'mdi:email-fast-outline' } },
  { object: 'deferred', name: 'Deferred, retried later', template: '{{ value_json.queue.deferred }}', extra: { state_class: 'measurement', icon: 'mdi:email-alert-outline' } },
  { object: 'failed', name: 'Failed, waiting for a person', template: '{{ value_json.queue.failed }}', extra: { state_class: 'measurement', icon: 'mdi:email-remove-outline' } },
  {
    object: 'oldest_age',
    name: 'Oldest undelivered (sending or deferred)',
    template: '{{ value_json.queue.oldest_age_s }}',
    extra: { device_class: 'duration', unit_of_measurement: 's', state_class: 'measurement' },
  },
  { object: 'delivered_total', name: 'Delivered recipients (total)', template: '{{ value_json.delivered_total }}', extra: { state_class: 'total_increasing', icon: 'mdi:email-check-outline' } },
  { object: 'failed_total', name: 'Failed recipients (total)', template: '{{ value_json.failed_total }}', extra: { state_class: 'total_increasing', icon: 'mdi:email-remove' } },
  { object: 'last_error', name: 'Last error', template: LAST_ERROR_TEMPLATE, extra: { entity_category: 'diagnostic', icon: 'mdi:alert-circle-outline' } },
  {
    object: 'disk_free',
    name: 'Spool free space',
    template: '{{ value_json.disk.free_bytes if value_json.disk is defined else None }}',
    extra: { device_class: 'data_size', unit_of_measurement: 'B', state_class: 'measurement', entity_category: 'diagnostic' },
  },
];

/**
 * An upstream name as an object id (HA allows letters, digits, `_` and `-`; names may also hold
 * `.`). A name of HA's characters keeps the id it always had, `upstream_<name>`. A dotted name gets
 * `upstreamx_` with `_` and `.` written `_5f` and `_2e`: no name of the first kind can reach that prefix,
 * and within it the escapes are unambiguous, so `a.b` and `a_b` never share an id.
 */
export function objectIdOfUpstream(name: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(name)) return `upstream_${name}`;
  return `upstreamx_${name.replace(/[^A-Za-z0-9-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}`;
}

/**
 * ok → ON, any failing state → OFF, and `unknown` (nothing tried since start) → HA's own
 * unknown, by rendering `None`: showing a never-tried upstream as connected, or as down, would
 * both be a claim relaybox cannot make.
 */
export function upstreamStateTemplate(name: string): string {
  const key = JSON.stringify(name);
  return `{% set u = value_json.upstreams.get(${key}) %}{{ 'None' if u is none or u.state == 'unknown' else ('ON' if u.state == 'ok' else 'OFF') }}`;
}

export function discoveryMessages(input: DiscoveryInput): DiscoveryMessage[] {
  const device = {
    identifiers: [`relaybox_${input.nodeId}`],
    name: `relaybox ${input.nodeId}`,
    manufacturer: 'relaybox',
    model: 'store-and-forward SMTP relay',
    sw_version: input.version,
    ...(input.configurationUrl ? { configuration_url: input.configurationUrl } : {}),
  };
  const common = {
    state_topic: `${input.base}/status`,
    availability_topic: `${input.base}/availability`,
    payload_available: 'online',
    payload_not_available: 'offline',
    device,
    origin: { name: 'relaybox', sw_version: input.version },
  };
  const topic = (component: string, object: string) => `${input.discoveryPrefix}/${component}/${input.nodeId}/${object}/config`;
  const messages = SENSORS.map((s) => ({
    topic: topic('sensor', s.object),
    payload: JSON.stringify({ name: s.name, unique_id: `relaybox_${input.nodeId}_${s.object}`, value_template: s.template, ...s.extra, ...common }),
  }));
  for (const name of input.upstreams) {
    const object = objectIdOfUpstream(name);
    messages.push({
      topic: topic('binary_sensor', object),
      payload: JSON.stringify({
        name: `Upstream ${name}`,
        unique_id: `relaybox_${input.nodeId}_${object}`,
        device_class: 'connectivity',
        entity_category: 'diagnostic',
        value_template: upstreamStateTemplate(name),
        payload_on: 'ON',
        payload_off: 'OFF',
        json_attributes_topic: `${input.base}/status`,
        json_attributes_template: `{{ value_json.upstreams.get(${JSON.stringify(name)}, {}) | tojson }}`,
        ...common,
      }),
    });
  }
  return messages;
}

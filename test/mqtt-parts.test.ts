import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import { renderBody, renderDigest, renderSubject, renderTemplate } from '../src/ingress/alertTemplate.js';
import { discoveryMessages, upstreamStateTemplate } from '../src/status/homeassistant.js';
import { nodeIdOf, topicMatches } from '../src/status/mqttClient.js';

const problems = configProblems;

const input = (payload: string, topic = 'sensors/freezer/alert') => ({ topic, payload: Buffer.from(payload), at: new Date('2026-11-01T10:00:00Z') });

describe('mqtt configuration', () => {
  it('fills the defaults of SPEC', () => {
    const config = parseConfig(`mqtt: { url: "mqtt://broker.lan" }\n${FILE_UPSTREAM}`);
    expect(config.mqtt).toEqual({
      url: 'mqtt://broker.lan',
      topic_prefix: 'relaybox',
      node_id: '',
      tls: { verify: true },
      home_assistant: { enabled: true, discovery_prefix: 'homeassistant' },
      alerts: [],
    });
    const alerts = parseConfig(`mqtt: { alerts: [{ topic: "sensors/+/alert", to: [ops@example.com], subject: "{{topic}}", min_interval: 10m }] }\n${FILE_UPSTREAM}`);
    expect(alerts.mqtt!.alerts[0]).toMatchObject({ min_interval: 600_000, qos: 1 });
    expect(parseConfig(FILE_UPSTREAM).mqtt).toBeUndefined();
  });

  it('names the key and the problem', () => {
    expect(problems(`mqtt: { url: "http://broker" }\n${FILE_UPSTREAM}`)).toEqual(['mqtt.url: expected mqtt://host[:port] or mqtts://host[:port], got "http://broker"']);
    expect(problems(`mqtt: { alerts: [{ topic: "a/#/b", to: [x@example.com], subject: s }] }\n${FILE_UPSTREAM}`)[0]).toMatch(/^mqtt\.alerts\[0\]\.topic: expected an MQTT topic filter/);
    expect(problems(`mqtt: { alerts: [{ topic: a, to: [x@example.com], subject: s, qos: 2 }] }\n${FILE_UPSTREAM}`)[0]).toMatch(/^mqtt\.alerts\[0\]\.qos:/);
    expect(problems(`mqtt: { alerts: [{ topic: a, to: [], subject: s }] }\n${FILE_UPSTREAM}`)).toEqual(['mqtt.alerts[0].to: at least one recipient is needed']);
    expect(problems(`mqtt: { alerts: [{ topic: a, to: [x@example.com], subject: s, min_interval: often }] }\n${FILE_UPSTREAM}`)[0]).toMatch(/min_interval: expected a duration/);
    expect(problems(`mqtt: { tls: { ca: /nonexistent/ca.pem } }\n${FILE_UPSTREAM}`)).toEqual(['mqtt.tls.ca: cannot read the file "/nonexistent/ca.pem"']);
    expect(problems(`mqtt: { topic_prefix: "a/+/b" }\n${FILE_UPSTREAM}`)[0]).toMatch(/^mqtt\.topic_prefix:/);
    expect(problems(`mqtt: { node_id: "my box" }\n${FILE_UPSTREAM}`)[0]).toMatch(/^mqtt\.node_id:/);
  });

  it('takes the node id from the hostname, made safe for topics and Home Assistant', () => {
    const config = parseConfig(`mqtt: {}\n${FILE_UPSTREAM}`).mqtt!;
    expect(nodeIdOf(config, 'Relaybox.Example.com')).toBe('relaybox_example_com');
    expect(nodeIdOf(config, 'pi+box#1')).toBe('pi_box_1');
    expect(nodeIdOf({ ...config, node_id: 'office' }, 'anything')).toBe('office');
  });
});

describe('topic filters', () => {
  it('match as MQTT does', () => {
    expect(topicMatches('sensors/+/alert', 'sensors/freezer/alert')).toBe(true);
    expect(topicMatches('sensors/+/alert', 'sensors/freezer/x/alert')).toBe(false);
    expect(topicMatches('ups/#', 'ups')).toBe(true);
    expect(topicMatches('ups/#', 'ups/a/b')).toBe(true);
    expect(topicMatches('#', '$SYS/broker/uptime')).toBe(false);
    expect(topicMatches('a/b', 'a/b/c')).toBe(false);
  });
});

describe('alert templates', () => {
  it('fills topic, segments, payload text and JSON paths', () => {
    const json = input(JSON.stringify({ message: 'door open', temp: { c: -4.5 }, list: ['x', 'y'], flag: false }));
    expect(renderTemplate('{{topic}} | {{segments.1}} | {{ payload.message }} | {{payload.temp.c}} | {{payload.list.1}} | {{payload.flag}}', json)).toBe(
      'sensors/freezer/alert | freezer | door open | -4.5 | y | false',
    );
    expect(renderTemplate('{{payload.temp}}', json)).toBe('{"c":-4.5}');
    expect(renderTemplate('{{payload}}', input('plain text'))).toBe('plain text');
    expect(renderTemplate('[{{payload.message}}] [{{segments.9}}] {{time}}', input('not json'))).toBe('[] [] 2026-11-01T10:00:00.000Z');
    expect(renderTemplate('{{tpoic}} stays', json)).toBe('{{tpoic}} stays');
  });

  it('keeps a subject on one line, and writes a body when the rule has none', () => {
    expect(renderSubject('{{payload}}', input('line one\r\nSubject: injected'))).toBe('line one Subject: injected');
    expect(renderSubject('{{payload.missing}}', input('{}'))).toBe('Alert on sensors/freezer/alert');
    expect(renderSubject('{{payload}}', input('x'.repeat(1000)))).toHaveLength(250);
    expect(renderBody(undefined, input('{"a":1}'))).toBe('Alert on sensors/freezer/alert at 2026-11-01T10:00:00.000Z:\n\n{"a":1}\n');
    expect(renderBody('{{payload.a}}', input('{"a":1}'))).toBe('1');
  });

  it('lists each held alert in the digest with its time', () => {
    const digest = renderDigest('ups/alert', [{ at: Date.parse('2026-11-01T10:00:01Z'), payload: Buffer.from('one') }, { at: Date.parse('2026-11-01T10:00:02Z'), payload: Buffer.from('two') }], 600_000);
    expect(digest.subject).toBe('2 more alerts on ups/alert');
    expect(digest.text).toContain('2026-11-01T10:00:01.000Z  one\n2026-11-01T10:00:02.000Z  two\n');
    expect(renderDigest('t', [{ at: 0, payload: Buffer.from('x') }], 1000).subject).toBe('1 more alert on t');
  });
});

describe('Home Assistant discovery', () => {
  const messages = discoveryMessages({ discoveryPrefix: 'homeassistant', nodeId: 'office', base: 'relaybox/office', version: '1.2.3', upstreams: ['google', 'my.relay'] });

  it('makes one device with a sensor per status field and a connectivity sensor per upstream', () => {
    expect(messages.map((m) => m.topic)).toEqual([
      ...['state', 'queued', 'deferred', 'failed', 'oldest_age', 'delivered_total', 'failed_total', 'last_error', 'disk_free'].map((o) => `homeassistant/sensor/office/${o}/config`),
      'homeassistant/binary_sensor/office/upstream_google/config',
      'homeassistant/binary_sensor/office/upstreamx_my_2erelay/config', // a dotted name, escaped: never the id of my_relay
    ]);
    for (const m of messages) {
      const c = JSON.parse(m.payload);
      expect(c).toMatchObject({
        state_topic: 'relaybox/office/status',
        availability_topic: 'relaybox/office/availability',
        device: { identifiers: ['relaybox_office'], name: 'relaybox office', sw_version: '1.2.3' },
      });
      expect(c.unique_id).toBe(`relaybox_office_${m.topic.split('/')[3]}`);
    }
  });

  it('maps an upstream state to ON, OFF or unknown', () => {
    const template = upstreamStateTemplate('my.relay');
    expect(template).toContain('value_json.upstreams.get("my.relay")');
    expect(template).toContain("'None' if u is none or u.state == 'unknown'");
    expect(template).toContain("'ON' if u.state == 'ok' else 'OFF'");
  });
});

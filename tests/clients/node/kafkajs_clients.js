// Scenarios for kafkajs against a running Stratalog, driven by tests/e2e/kafkajs.rs.
// Usage: node kafkajs_clients.js BOOTSTRAP SCENARIO [ARGS...]
//
//   admin                         create/describe topics, configs, cluster; partitions; delete
//   records CODEC                 produce records with keys and headers, consume, compare exactly
//   group-first TOPIC GROUP FILE  two members: the second joins, the first leaves; stop mid-log
//   group-resume TOPIC GROUP FILE a new member (autoCommit) resumes from the committed offsets
//
// Producers are idempotent with acks=-1 (all). Each scenario prints "key=value" lines that the
// Rust test compares, and exits non-zero on any mismatch. kafkajs is found through NODE_PATH.
'use strict'
const fs = require('fs')
const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners } = require('kafkajs')

const [bootstrap, scenario, ...args] = process.argv.slice(2)
const level = { debug: logLevel.DEBUG, info: logLevel.INFO }[process.env.STRATALOG_TEST_CLIENT_LOG] || logLevel.WARN

function kafka(clientId) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: level,
    // Log lines go to stderr; stdout carries only the results.
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`kafkajs ${level} ${namespace}: ${JSON.stringify(log)}\n`)
    },
  })
}

function out(line) {
  process.stdout.write(line + '\n')
}

function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitUntil(what, timeoutMs, done) {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    check(Date.now() < deadline, 'timed out waiting for ' + what)
    await sleep(50)
  }
}

function producer(client) {
  return client.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner })
}

// ------------------------------------------------------------------ admin

async function admin() {
  const admin = kafka('kafkajs-admin').admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{
        topic: 'kafkajs-admin',
        numPartitions: 3,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '86400000' }, { name: 'cleanup.policy', value: 'delete' }],
      }],
    })
    out('created=' + created)
    const again = await admin.createTopics({ topics: [{ topic: 'kafkajs-admin', numPartitions: 3 }] })
    out('create-again=' + again)

    const md = await admin.fetchTopicMetadata({ topics: ['kafkajs-admin'] })
    const t = md.topics[0]
    out(`describe name=${t.name} partitions=${t.partitions.length}`)
    for (const p of [...t.partitions].sort((a, b) => a.partitionId - b.partitionId)) {
      out(`partition ${p.partitionId} leader=${p.leader} replicas=${p.replicas.length} isr=${p.isr.length}`)
    }

    const configs = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'kafkajs-admin', configNames: ['retention.ms', 'cleanup.policy'] }],
      includeSynonyms: false,
    })
    const entries = configs.resources[0].configEntries
    for (const name of ['retention.ms', 'cleanup.policy']) {
      const e = entries.find(c => c.configName === name)
      out(`config ${name}=${e && e.configValue} default=${e && e.isDefault}`)
    }

    const cluster = await admin.describeCluster()
    out(`cluster id=${cluster.clusterId} nodes=${cluster.brokers.length} controller=${cluster.controller} node0=${cluster.brokers[0].host}`)

    await admin.createPartitions({ topicPartitions: [{ topic: 'kafkajs-admin', count: 5 }] })
    const after = await admin.fetchTopicMetadata({ topics: ['kafkajs-admin'] })
    out('partitions-after-increase=' + after.topics[0].partitions.length)

    const offsets = await admin.fetchTopicOffsets('kafkajs-admin')
    out('offsets=' + offsets.map(o => `${o.partition}:${o.low}-${o.high}`).sort().join(','))

    out('listed=' + (await admin.listTopics()).includes('kafkajs-admin'))
    await admin.deleteTopics({ topics: ['kafkajs-admin'] })
    out('listed-after-delete=' + (await admin.listTopics()).includes('kafkajs-admin'))
  } finally {
    await admin.disconnect()
  }
}

// ------------------------------------------------------------------ records

const RECORDS = 2000
const PARTS = 3

// Record i: explicit partition i % 3 (so its offset is known: floor(i / 3)), keys, null keys,
// null values, duplicate and empty headers, some with their own timestamps.
function recordFor(i, baseTs) {
  const m = {
    partition: i % PARTS,
    key: i % 7 === 3 ? null : `key-${i % 50}`,
    value: i % 11 === 5 ? null : Buffer.from(`value-${i}-` + 'x'.repeat(i % 300)),
  }
  if (i % 13 !== 0) {
    m.headers = { index: String(i), bytes: Buffer.from([0, i & 0xff, 0xff, 127]) }
    if (i % 5 === 0) m.headers.dup = ['first', 'second']
    if (i % 3 === 0) m.headers.empty = Buffer.alloc(0)
  }
  if (i % 4 === 0) m.timestamp = String(baseTs + (RECORDS - i))
  return m
}

function bufEq(want, got) {
  if (want == null || got == null) return want == null && got == null
  return Buffer.compare(Buffer.from(want), got) === 0
}

function headersEq(want, got) {
  want = want || {}
  const wk = Object.keys(want).sort()
  const gk = Object.keys(got || {}).sort()
  if (wk.join('\0') !== gk.join('\0')) return false
  for (const k of wk) {
    const w = [].concat(want[k])
    const g = [].concat(got[k])
    if (w.length !== g.length) return false
    for (let j = 0; j < w.length; j++) if (!bufEq(w[j], g[j])) return false
  }
  return true
}

async function records(codec) {
  const topic = 'kafkajs-records-' + codec
  const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[codec]
  check(compression !== undefined, 'kafkajs ships only none and gzip, not ' + codec)
  const client = kafka('kafkajs-records')
  const admin = client.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTS }] })
  await admin.disconnect()

  const baseTs = Date.now() - 60000
  const p = producer(client)
  await p.connect()
  const sent = []
  for (let start = 0; start < RECORDS; start += 100) {
    const messages = []
    for (let i = start; i < Math.min(start + 100, RECORDS); i++) {
      messages.push(recordFor(i, baseTs))
      sent.push(recordFor(i, baseTs))
    }
    const md = await p.send({ topic, messages, acks: -1, compression })
    for (const r of md) check(r.errorCode === 0, 'produce error ' + JSON.stringify(r))
  }
  await p.disconnect()
  out('producer idempotent=true acks=-1')

  const expected = new Map()
  sent.forEach((m, i) => expected.set(`${m.partition}@${Math.floor(i / PARTS)}`, m))

  const consumer = client.consumer({ groupId: 'kafkajs-records-reader', maxWaitTimeInMs: 500 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let got = 0
  let failure = null
  consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const at = `${partition}@${message.offset}`
      try {
        const want = expected.get(at)
        check(want !== undefined, 'unexpected or repeated record at ' + at)
        expected.delete(at)
        check(bufEq(want.key, message.key), 'key at ' + at)
        check(bufEq(want.value, message.value), 'value at ' + at)
        check(headersEq(want.headers, message.headers), 'headers at ' + at + ': ' + JSON.stringify(message.headers))
        if (want.timestamp) check(want.timestamp === message.timestamp, 'timestamp at ' + at)
        got++
      } catch (e) {
        failure = failure || e
      }
    },
  })
  await waitUntil(`${RECORDS} records`, 60000, () => got >= RECORDS || failure)
  await consumer.disconnect()
  if (failure) throw failure

  const admin2 = client.admin()
  await admin2.connect()
  const offsets = await admin2.fetchTopicOffsets(topic)
  await admin2.disconnect()
  const total = offsets.reduce((sum, o) => sum + Number(o.high) - Number(o.low), 0)
  check(total === RECORDS, 'end offsets sum to ' + total)
  out(`records codec=${codec} produced=${RECORDS} consumed=${got} partitions-used=${offsets.length}`)
}

// ------------------------------------------------------------------ groups

const PARTITIONS = 4

// A group member that commits each record before taking the next, so a record counts as
// processed only once its offset is committed; or, with `defaults`, one that leaves commits
// to kafkajs (autoCommit).
async function member(name, topic, group, values, defaults = false) {
  const consumer = kafka('kafkajs-' + name).consumer({
    groupId: group,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    rebalanceTimeout: 20000,
    maxWaitTimeInMs: 300,
  })
  // stopAt: once `values` holds this many records, later ones are neither processed nor committed.
  const m = { name, consumer, assigned: [], count: 0, crashed: null, firstOffsets: new Map(), stopAt: Infinity }
  consumer.on(consumer.events.GROUP_JOIN, e => {
    m.assigned = [...(e.payload.memberAssignment[topic] || [])].sort((a, b) => a - b)
  })
  consumer.on(consumer.events.CRASH, e => {
    m.crashed = e.payload.error
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  consumer.run({
    autoCommit: defaults,
    eachMessage: async ({ partition, message }) => {
      if (values.length >= m.stopAt) return
      const next = (BigInt(message.offset) + 1n).toString()
      if (!defaults) await consumer.commitOffsets([{ topic, partition, offset: next }])
      if (!m.firstOffsets.has(partition)) m.firstOffsets.set(partition, message.offset)
      values.push(message.value.toString())
      m.count++
    },
  })
  return m
}

function noCrash(...members) {
  for (const m of members) if (m.crashed) throw m.crashed
}

async function produce(client, topic, prefix, n) {
  const p = producer(client)
  await p.connect()
  const messages = []
  for (let i = 0; i < n; i++) messages.push({ key: `k-${i % 20}`, value: `${prefix}-${i}` })
  await p.send({ topic, messages, acks: -1 })
  await p.disconnect()
}

async function committed(client, topic, group) {
  const admin = client.admin()
  await admin.connect()
  const res = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  const parts = res[0].partitions.filter(p => Number(p.offset) >= 0)
  return { partitions: parts.length, sum: parts.reduce((s, p) => s + Number(p.offset), 0), byPartition: parts }
}

async function groupFirst(topic, group, file) {
  const client = kafka('kafkajs-group')
  const admin = client.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })
  await admin.disconnect()
  await produce(client, topic, 'a', 200)

  const values = []
  const a = await member('member-a', topic, group, values)
  await waitUntil('member-a to own every partition and process 50 records', 60000, () => {
    noCrash(a)
    return a.assigned.length === PARTITIONS && a.count >= 50
  })
  out('alone a=' + a.assigned.join(','))

  const b = await member('member-b', topic, group, values)
  await waitUntil('the rebalance after member-b joined', 60000, () => {
    noCrash(a, b)
    return a.assigned.length > 0 && b.assigned.length > 0 &&
      a.assigned.length + b.assigned.length === PARTITIONS &&
      a.assigned.every(p => !b.assigned.includes(p))
  })
  out(`joined a=${a.assigned.join(',')} b=${b.assigned.join(',')}`)

  await produce(client, topic, 'b', 200)
  const bBefore = b.count
  await waitUntil('both members to process the second batch', 60000, () => {
    noCrash(a, b)
    return values.length >= 400 && b.count > bBefore
  })
  out('both-processed=true')

  await a.consumer.disconnect()
  await waitUntil('member-b to own every partition after member-a left', 60000, () => {
    noCrash(b)
    return b.assigned.length === PARTITIONS
  })
  out('left b=' + b.assigned.join(','))

  // Stop in the middle of the log: process exactly 550 of the 600 records.
  b.stopAt = 550
  await produce(client, topic, 'c', 200)
  await waitUntil('550 records processed', 60000, () => {
    noCrash(b)
    return values.length >= 550
  })
  await sleep(500) // fetched records past 550 are skipped, not committed
  await b.consumer.disconnect()

  check(new Set(values).size === values.length, 'a record was processed twice')
  fs.writeFileSync(file, values.join('\n') + '\n')
  out(`processed=${values.length} distinct=${new Set(values).size}`)
  const c = await committed(client, topic, group)
  out(`committed-partitions=${c.partitions} committed-sum=${c.sum}`)

  const admin2 = client.admin()
  await admin2.connect()
  const desc = await admin2.describeGroups([group])
  await admin2.disconnect()
  out(`group state=${desc.groups[0].state} members=${desc.groups[0].members.length}`)
}

async function groupResume(topic, group, file) {
  const client = kafka('kafkajs-group')
  const before = fs.readFileSync(file, 'utf8').split('\n').filter(s => s.length > 0)
  const c = await committed(client, topic, group)
  out(`committed-partitions=${c.partitions} committed-sum=${c.sum}`)

  await produce(client, topic, 'd', 100)
  const all = new Set()
  for (const prefix of ['a', 'b', 'c']) for (let i = 0; i < 200; i++) all.add(`${prefix}-${i}`)
  for (let i = 0; i < 100; i++) all.add(`d-${i}`)
  const remaining = all.size - before.length

  const values = []
  const m = await member('member-c', topic, group, values, true)
  await waitUntil(`${remaining} records after the restart`, 60000, () => {
    noCrash(m)
    return values.length >= remaining
  })
  await sleep(3000) // anything more would be a repeat
  await m.consumer.disconnect()

  for (const [partition, first] of m.firstOffsets) {
    const at = c.byPartition.find(p => p.partition === partition)
    const want = at ? at.offset : '0'
    check(first === want, `partition ${partition} resumed at ${first}, committed ${want}`)
  }
  const seen = new Set(before)
  let repeated = 0
  for (const v of values) {
    if (seen.has(v)) repeated++
    seen.add(v)
  }
  let lost = 0
  for (const v of all) if (!seen.has(v)) lost++
  out(`resumed=${values.length} repeated=${repeated} lost=${lost} unknown=${seen.size - all.size + lost}`)
  out(`committed-after-sum=${(await committed(client, topic, group)).sum}`)
}

const scenarios = {
  admin: () => admin(),
  records: () => records(args[0]),
  'group-first': () => groupFirst(args[0], args[1], args[2]),
  'group-resume': () => groupResume(args[0], args[1], args[2]),
}

const run = scenarios[scenario]
if (!run) {
  process.stderr.write('unknown scenario ' + scenario + '\n')
  process.exit(2)
}
run().then(
  () => process.exit(0),
  e => {
    process.stderr.write('FAILED: ' + (e && e.stack ? e.stack : e) + '\n')
    process.exit(1)
  }
)

// Scenarios for the Apache Kafka Java client against a running Stratalog, driven by
// tests/e2e/java.rs. Usage: JavaClients BOOTSTRAP SCENARIO [ARGS...]
//
//   admin                         create/describe topics, configs, cluster; partitions; delete
//   records CODEC                 produce keyed records with headers, consume, compare exactly
//   group-first TOPIC GROUP FILE  two members: the second joins, the first leaves; stop mid-log
//   group-resume TOPIC GROUP FILE a new member (consumer defaults: auto-commit) resumes from
//                                 the committed offsets
//
// The producers keep the client's defaults (enable.idempotence=true, acks=all). Each scenario
// prints "key=value" lines that the Rust test compares, and exits non-zero on any mismatch.
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class JavaClients {
    static String bootstrap;

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        switch (args[1]) {
            case "admin" -> admin();
            case "records" -> records(args[2]);
            case "group-first" -> groupFirst(args[2], args[3], Path.of(args[4]));
            case "group-resume" -> groupResume(args[2], args[3], Path.of(args[4]));
            default -> throw new IllegalArgumentException("unknown scenario " + args[1]);
        }
        System.out.flush();
        // Client threads are non-daemon only while clients are open; all are closed here.
        System.exit(0);
    }

    static void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static Properties common(String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        return p;
    }

    static Admin admin(String clientId) {
        return Admin.create(common(clientId));
    }

    static KafkaProducer<byte[], byte[]> producer(String clientId, String compression) {
        Properties p = common(clientId);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        if (compression != null) p.put("compression.type", compression);
        ProducerConfig effective = new ProducerConfig(p);
        out("producer enable.idempotence=" + effective.getBoolean("enable.idempotence")
                + " acks=" + effective.getString("acks"));
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer(String clientId, String group) {
        Properties p = common(clientId);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        if (group != null) {
            p.put("group.id", group);
            p.put("enable.auto.commit", "false");
            p.put("auto.offset.reset", "earliest");
            p.put("max.poll.records", "20");
        }
        return new KafkaConsumer<>(p);
    }

    static byte[] utf8(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs)
            throws Exception {
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs)))
                .all().get(30, TimeUnit.SECONDS);
    }

    // ---------------------------------------------------------------- admin

    static void admin() throws Exception {
        try (Admin admin = admin("java-admin")) {
            createTopic(admin, "java-admin", 3,
                    Map.of("retention.ms", "86400000", "cleanup.policy", "delete"));
            out("created=java-admin");
            try {
                createTopic(admin, "java-admin", 3, Map.of());
                throw new AssertionError("second create of java-admin succeeded");
            } catch (ExecutionException e) {
                out("create-again=" + e.getCause().getClass().getSimpleName());
            }

            TopicDescription d = admin.describeTopics(List.of("java-admin")).allTopicNames()
                    .get(30, TimeUnit.SECONDS).get("java-admin");
            out("describe name=" + d.name() + " partitions=" + d.partitions().size()
                    + " internal=" + d.isInternal()
                    + " topic-id-set=" + !d.topicId().equals(Uuid.ZERO_UUID));
            for (TopicPartitionInfo p : d.partitions()) {
                out("partition " + p.partition() + " leader=" + p.leader().id()
                        + " replicas=" + p.replicas().size() + " isr=" + p.isr().size());
            }

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, "java-admin");
            Config config = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
            for (String name : List.of("retention.ms", "cleanup.policy")) {
                ConfigEntry e = config.get(name);
                out("config " + name + "=" + e.value() + " source=" + e.source());
            }

            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get(30, TimeUnit.SECONDS);
            out("cluster id=" + cluster.clusterId().get() + " nodes=" + nodes.size()
                    + " controller=" + cluster.controller().get().id()
                    + " node0=" + nodes.iterator().next().host());

            admin.createPartitions(Map.of("java-admin", NewPartitions.increaseTo(5)))
                    .all().get(30, TimeUnit.SECONDS);
            int after = admin.describeTopics(List.of("java-admin")).allTopicNames()
                    .get(30, TimeUnit.SECONDS).get("java-admin").partitions().size();
            out("partitions-after-increase=" + after);

            Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            out("listed=" + names.contains("java-admin"));
            admin.deleteTopics(List.of("java-admin")).all().get(30, TimeUnit.SECONDS);
            names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            out("listed-after-delete=" + names.contains("java-admin"));
        }
    }

    // ---------------------------------------------------------------- records

    record Expected(byte[] key, byte[] value, List<Header> headers, long timestamp) {}

    static final int RECORDS = 2000;

    /** Record i of the records scenario: keys, null keys, null values, and varied headers. */
    static ProducerRecord<byte[], byte[]> recordFor(String topic, int i, long baseTs) {
        byte[] key = i % 7 == 3 ? null : utf8("key-" + (i % 50));
        byte[] value = i % 11 == 5 ? null : utf8("value-" + i + "-" + "x".repeat(i % 300));
        List<Header> headers = new ArrayList<>();
        if (i % 13 != 0) {
            headers.add(new RecordHeader("index", utf8(Integer.toString(i))));
            headers.add(new RecordHeader("bytes", new byte[] {0, (byte) i, (byte) 0xff, 127}));
            if (i % 5 == 0) {
                headers.add(new RecordHeader("dup", utf8("first")));
                headers.add(new RecordHeader("dup", utf8("second")));
            }
            if (i % 3 == 0) headers.add(new RecordHeader("empty", new byte[0]));
            if (i % 17 == 0) headers.add(new RecordHeader("null-value", null));
        }
        // Some records carry their own timestamp (not in order), the others get the producer's.
        Long ts = i % 4 == 0 ? baseTs + (RECORDS - i) : null;
        return new ProducerRecord<>(topic, null, ts, key, value, headers);
    }

    static boolean sameHeaders(List<Header> want, Header[] got) {
        if (want.size() != got.length) return false;
        for (int i = 0; i < got.length; i++) {
            if (!want.get(i).key().equals(got[i].key())) return false;
            if (!Arrays.equals(want.get(i).value(), got[i].value())) return false;
        }
        return true;
    }

    static void records(String codec) throws Exception {
        String topic = "java-records-" + codec;
        try (Admin admin = admin("java-records-admin")) {
            createTopic(admin, topic, 3, Map.of());
        }
        long baseTs = System.currentTimeMillis() - 60_000;
        Map<TopicPartition, Map<Long, Expected>> expected = new HashMap<>();
        List<Exception> errors = Collections.synchronizedList(new ArrayList<>());
        try (KafkaProducer<byte[], byte[]> producer = producer("java-records-producer", codec)) {
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
            for (int i = 0; i < RECORDS; i++) {
                ProducerRecord<byte[], byte[]> r = recordFor(topic, i, baseTs);
                records.add(r);
                sent.add(producer.send(r, (md, e) -> {
                    if (e != null) errors.add(e);
                }));
            }
            producer.flush();
            check(errors.isEmpty(), "send errors: " + errors);
            for (int i = 0; i < RECORDS; i++) {
                RecordMetadata md = sent.get(i).get(30, TimeUnit.SECONDS);
                ProducerRecord<byte[], byte[]> r = records.get(i);
                long ts = r.timestamp() != null ? r.timestamp() : md.timestamp();
                check(r.timestamp() == null || md.timestamp() == r.timestamp(),
                        "metadata timestamp of record " + i);
                Expected prev = expected.computeIfAbsent(new TopicPartition(topic, md.partition()),
                                k -> new HashMap<>())
                        .put(md.offset(), new Expected(r.key(), r.value(),
                                Arrays.asList(r.headers().toArray()), ts));
                check(prev == null, "two records acknowledged at " + md.partition() + "@" + md.offset());
            }
        }
        // Per partition, the acknowledged offsets are exactly 0..n-1: nothing written twice.
        for (Map.Entry<TopicPartition, Map<Long, Expected>> e : expected.entrySet()) {
            int n = e.getValue().size();
            for (long o = 0; o < n; o++) check(e.getValue().containsKey(o), "hole at " + e.getKey() + "@" + o);
        }

        try (KafkaConsumer<byte[], byte[]> consumer = consumer("java-records-consumer", null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < 3; p++) tps.add(new TopicPartition(topic, p));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            int got = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (got < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    Expected want = expected.getOrDefault(tp, Map.of()).remove(r.offset());
                    String at = tp + "@" + r.offset();
                    check(want != null, "unexpected or repeated record at " + at);
                    check(Arrays.equals(want.key(), r.key()), "key at " + at);
                    check(Arrays.equals(want.value(), r.value()), "value at " + at);
                    check(sameHeaders(want.headers(), r.headers().toArray()), "headers at " + at);
                    check(want.timestamp() == r.timestamp(), "timestamp at " + at);
                    check(r.timestampType() == TimestampType.CREATE_TIME, "timestamp type at " + at);
                    got++;
                }
            }
            check(got == RECORDS, "consumed " + got + " of " + RECORDS);
            // Nothing beyond what was acknowledged.
            Map<TopicPartition, Long> end = consumer.endOffsets(tps);
            long total = end.values().stream().mapToLong(Long::longValue).sum();
            check(total == RECORDS, "end offsets sum to " + total);
            out("records codec=" + codec + " produced=" + RECORDS + " consumed=" + got
                    + " partitions-used=" + expected.size());
        }
    }

    // ---------------------------------------------------------------- groups

    static final int PARTITIONS = 4;

    /** A group member that processes records one at a time and commits what it processed. */
    static class Member implements ConsumerRebalanceListener {
        final String name;
        final KafkaConsumer<byte[], byte[]> consumer;
        final Set<TopicPartition> assigned = new TreeSet<>(Comparator.comparing(TopicPartition::toString));
        final Map<TopicPartition, OffsetAndMetadata> processed = new HashMap<>();
        final List<String> values;
        int count;
        int rebalances;

        Member(String name, String topic, String group, List<String> values) {
            this.name = name;
            this.values = values;
            this.consumer = consumer("java-" + name, group);
            consumer.subscribe(List.of(topic), this);
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            commit();
            assigned.removeAll(partitions);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            assigned.addAll(partitions);
            rebalances++;
        }

        void commit() {
            if (!processed.isEmpty()) consumer.commitSync(processed);
            processed.clear();
        }

        /** One poll; processes at most `limit` records (the rest are dropped, not committed). */
        void poll(int limit) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
            for (ConsumerRecord<byte[], byte[]> r : records) {
                if (limit-- <= 0) break;
                values.add(str(r.value()));
                processed.put(new TopicPartition(r.topic(), r.partition()),
                        new OffsetAndMetadata(r.offset() + 1));
                count++;
            }
            commit();
        }
    }

    static void produce(String topic, String prefix, int n) throws Exception {
        try (KafkaProducer<byte[], byte[]> producer = producer("java-group-producer-" + prefix, null)) {
            for (int i = 0; i < n; i++) {
                producer.send(new ProducerRecord<>(topic, utf8("k-" + (i % 20)), utf8(prefix + "-" + i)));
            }
            producer.flush();
        }
    }

    static void waitUntil(String what, long timeoutMs, Runnable step, java.util.function.BooleanSupplier done) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!done.getAsBoolean()) {
            check(System.currentTimeMillis() < deadline, "timed out waiting for " + what);
            step.run();
        }
    }

    static String partitions(Set<TopicPartition> tps) {
        return tps.stream().map(tp -> Integer.toString(tp.partition())).sorted().collect(Collectors.joining(","));
    }

    static Map<Integer, Long> committed(String group) throws Exception {
        try (Admin admin = admin("java-group-admin")) {
            Map<Integer, Long> out = new TreeMap<>();
            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                    .get(30, TimeUnit.SECONDS)
                    .forEach((tp, om) -> out.put(tp.partition(), om.offset()));
            return out;
        }
    }

    static void groupFirst(String topic, String group, Path file) throws Exception {
        try (Admin admin = admin("java-group-admin")) {
            createTopic(admin, topic, PARTITIONS, Map.of());
        }
        produce(topic, "a", 200);
        List<String> values = new ArrayList<>();
        Member a = new Member("member-a", topic, group, values);
        waitUntil("member-a to own every partition and process 50 records", 60_000, () -> a.poll(100),
                () -> a.assigned.size() == PARTITIONS && a.count >= 50);
        out("alone a=" + partitions(a.assigned));

        Member b = new Member("member-b", topic, group, values);
        waitUntil("the rebalance after member-b joined", 60_000, () -> {
            a.poll(100);
            b.poll(100);
        }, () -> !a.assigned.isEmpty() && !b.assigned.isEmpty()
                && a.assigned.size() + b.assigned.size() == PARTITIONS
                && Collections.disjoint(a.assigned, b.assigned));
        out("joined a=" + partitions(a.assigned) + " b=" + partitions(b.assigned));

        produce(topic, "b", 200);
        int bBefore = b.count;
        waitUntil("both members to process the second batch", 60_000, () -> {
            a.poll(100);
            b.poll(100);
        }, () -> values.size() >= 300 && b.count > bBefore);
        out("both-processed=true");

        a.consumer.close();
        waitUntil("member-b to own every partition after member-a left", 60_000, () -> b.poll(100),
                () -> b.assigned.size() == PARTITIONS);
        out("left b=" + partitions(b.assigned));

        produce(topic, "c", 200);
        // Stop in the middle of the log: process exactly 550 of the 600 records.
        waitUntil("550 records processed", 60_000, () -> b.poll(550 - values.size()),
                () -> values.size() >= 550);
        b.consumer.close();

        check(new HashSet<>(values).size() == values.size(), "a record was processed twice");
        Files.write(file, values, StandardCharsets.UTF_8);
        out("processed=" + values.size() + " distinct=" + new HashSet<>(values).size());
        Map<Integer, Long> committed = committed(group);
        long committedSum = committed.values().stream().mapToLong(Long::longValue).sum();
        out("committed-partitions=" + committed.size() + " committed-sum=" + committedSum);

        try (Admin admin = admin("java-group-admin")) {
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(group)).all()
                    .get(30, TimeUnit.SECONDS).get(group);
            out("group state=" + g.groupState() + " members=" + g.members().size());
        }
    }

    static void groupResume(String topic, String group, Path file) throws Exception {
        List<String> before = Files.readAllLines(file, StandardCharsets.UTF_8);
        Map<Integer, Long> committed = committed(group);
        long committedSum = committed.values().stream().mapToLong(Long::longValue).sum();
        out("committed-partitions=" + committed.size() + " committed-sum=" + committedSum);

        produce(topic, "d", 100);
        Set<String> all = new HashSet<>();
        for (String prefix : List.of("a", "b", "c")) for (int i = 0; i < 200; i++) all.add(prefix + "-" + i);
        for (int i = 0; i < 100; i++) all.add("d-" + i);
        int remaining = all.size() - before.size();

        // The resuming member keeps the consumer's defaults: auto-commit, which commits the
        // position on close.
        List<String> values = new ArrayList<>();
        Map<Integer, Long> firstOffsets = new TreeMap<>();
        Properties props = common("java-member-c");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("group.id", group);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            Runnable poll = () -> {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    firstOffsets.putIfAbsent(r.partition(), r.offset());
                    values.add(str(r.value()));
                }
            };
            waitUntil(remaining + " records after the restart", 60_000, poll, () -> values.size() >= remaining);
            // Anything more would be a repeat.
            long quiet = System.currentTimeMillis() + 3_000;
            while (System.currentTimeMillis() < quiet) poll.run();
        }
        long after = committed(group).values().stream().mapToLong(Long::longValue).sum();

        for (Map.Entry<Integer, Long> e : firstOffsets.entrySet()) {
            Long at = committed.getOrDefault(e.getKey(), 0L);
            check(e.getValue().equals(at), "partition " + e.getKey() + " resumed at " + e.getValue()
                    + ", committed " + at);
        }
        Set<String> seen = new HashSet<>(before);
        int repeated = 0;
        for (String v : values) if (!seen.add(v)) repeated++;
        Set<String> lost = new HashSet<>(all);
        lost.removeAll(seen);
        out("resumed=" + values.size() + " repeated=" + repeated + " lost=" + lost.size()
                + " unknown=" + (seen.size() - all.size() + lost.size()));
        out("committed-on-close-sum=" + after);
    }
}

/*
 * Produces one batch of N messages with librdkafka to partition 0 and
 * prints librdkafka's version (rd_kafka_version(), in hex) on the first
 * line, then each message's delivery report, one line per message: its
 * index, "OK" or the error's name, and the error's text (from 2.4.0 the
 * broker's message for the record, KIP-467). Message i has key
 * "k<i>" except the indexes given after N, which have none. RDKAFKA_DEBUG
 * in the environment sets librdkafka's debug contexts.
 *
 *   rdkafka_record_errors BOOTSTRAP TOPIC N [KEYLESS_INDEX...]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
	(void)rk;
	(void)opaque;
	const char *text = "";
	if (m->err) {
		text = rd_kafka_err2str(m->err);
#if RD_KAFKA_VERSION >= 0x020400ff
		/* KIP-467: the broker's message for this record. */
		if (rd_kafka_message_produce_errstr(m))
			text = rd_kafka_message_produce_errstr(m);
#endif
	}
	printf("%ld %s %s\n", (long)(intptr_t)m->_private, m->err ? rd_kafka_err2name(m->err) : "OK", text);
}

int main(int argc, char **argv) {
	char errstr[512];
	if (argc < 4) {
		fprintf(stderr, "usage: %s BOOTSTRAP TOPIC N [KEYLESS_INDEX...]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[3]);
	printf("%x\n", rd_kafka_version());
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *settings[][2] = {
		{"bootstrap.servers", argv[1]},
		{"linger.ms", "1000"}, /* one batch */
		{"acks", "all"},
		{"message.timeout.ms", "20000"},
	};
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "%s\n", errstr);
			return 1;
		}
	}
	const char *debug = getenv("RDKAFKA_DEBUG"); /* e.g. msg,protocol */
	if (debug && rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	/* Learn the partition's leader first, so that the messages,
	 * produced at once, wait out linger.ms together: one batch. */
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[2], NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	if (merr) {
		fprintf(stderr, "metadata: %s\n", rd_kafka_err2str(merr));
		return 1;
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	for (int i = 0; i < n; i++) {
		int keyless = 0;
		for (int a = 4; a < argc; a++)
			keyless |= atoi(argv[a]) == i;
		char key[32], value[32];
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(value, sizeof(value), "v%d", i);
		rd_kafka_resp_err_t err = rd_kafka_producev(rk,
			RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(0),
			RD_KAFKA_V_KEY(keyless ? NULL : key, keyless ? 0 : strlen(key)),
			RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
		if (err) {
			fprintf(stderr, "produce %d: %s\n", i, rd_kafka_err2str(err));
			return 1;
		}
	}
	rd_kafka_flush(rk, 30000);
	int left = rd_kafka_outq_len(rk);
	rd_kafka_destroy(rk);
	if (left) {
		fprintf(stderr, "%d messages not delivered\n", left);
		return 1;
	}
	return 0;
}

/*
 * main.c - mlmaster: options, start-up, and the one loop that owns the
 * master's state (see master.h for the turn structure).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "opt.h"
#include "pools.h"
#include "util.h"
#include "wire.h"

#define TICK_MS 50
#define MAX_MSGS_PER_TURN 4096
/* Within a turn's drain, the replies queued so far go out every this many
 * messages when nothing waits for a commit (heartbeats of agents with no
 * news): with thousands of agents a turn drains thousands of SYNCs, and the
 * first would otherwise wait for the last. */
#define EARLY_FLUSH_EVERY 256

void out_reply(struct master *m, nng_socket sock, const struct net_peer *peer, uint16_t type,
	       cJSON *body)
{
	struct outmsg *o = xcalloc(1, sizeof(*o));

	o->sock = sock;
	o->peer = *peer;
	o->type = type;
	o->body = body;
	*m->out_tail = o;
	m->out_tail = &o->next;
}

static void out_flush(struct master *m)
{
	struct outmsg *o = m->out_head, *next;

	for (; o; o = next) {
		next = o->next;
		net_reply_raw(o->sock, &o->peer, o->type, ++m->seq, 0, o->body);
		cJSON_Delete(o->body);
		free(o);
	}
	m->out_head = NULL;
	m->out_tail = &m->out_head;
}

/* Read what is queued on one socket (bounded, so a flood cannot starve the
 * rest of the turn). */
static void drain(struct master *m, nng_socket s, bool agents)
{
	struct net_peer peer;
	struct wire_hdr h;
	cJSON *body;
	char why[256];
	int rv;

	for (int i = 0; i < MAX_MSGS_PER_TURN; i++) {
		rv = net_recv_raw(s, &peer, &h, &body, why, sizeof(why));
		if (rv == ERR_TIMEDOUT)
			return;
		if (rv == ERR_TOOBIG) {
			guard_refuse_frame(m, s, &peer, agents, why);
			continue;
		}
		if (rv != 0) {
			log_warn("%s socket: message rejected: %s", agents ? "agent" : "client",
				 why);
			/* Tell a client that sent in the clear what to do
			 * instead of letting it time out. */
			if (rv == ERR_PROTO && !peer.sealed && !m->cfg.insecure)
				out_reply(m, s, &peer, WIRE_ERROR,
					  wire_error_body(ERR_PROTO,
							  "this master accepts only sealed "
							  "messages: %s",
							  agents ? "start mlagent with --join TOKEN"
								 : "set MLSCHED_KEY to an admin key "
								   "(mlmaster init makes one)"));
			continue;
		}
		if (!guard_admit(m, s, &peer, &h, agents))
			; /* refused, with a reply that names the limit */
		else if (!m->ha.leading && (agents || !leader_follower_reads(m, h.type)))
			leader_refuse(m, s, &peer, agents);
		else if (agents)
			agents_handle(m, &peer, &h, body);
		else
			api_handle(m, &peer, &h, body);
		cJSON_Delete(body);
		if ((i + 1) % EARLY_FLUSH_EVERY == 0 && m->out_head && state_clean(m) &&
		    (!m->ha.on || leader_valid(m)))
			out_flush(m);
	}
}

static void turn(struct master *m)
{
	int rv;

	leader_tick(m);
	telemetry_serve(m);
	drain(m, m->ctl, false);
	drain(m, m->agents, true);
	if (m->ha.leading) {
		queues_tick(m);
		if (m->sched_dirty) {
			uint64_t t0 = now_ns();
			m->sched_dirty = false;
			sched_run(m);
			metrics_observe(&m->stats.sched_pass, (double)(now_ns() - t0) / 1e9);
		}
		agents_tick(m);
		serve_tick(m);
		api_tick(m);
		pools_tick(m);
		if ((rv = state_flush(m)) != 0) {
			if (!m->ha.on) {
				/* Memory is ahead of the store and nothing of
				 * this turn has been acknowledged: back to the
				 * committed state, reads only until the store
				 * takes writes again. */
				leader_store_failed(m, rv);
				return;
			}
			/* HA: fenced (another master leads) or the store is
			 * unreachable: nothing of this turn may go out. */
			m->ha.lease_ok_at = 0;
		} else {
			pools_committed(m);
		}
		/* Only a leader whose lease is provably alive sends. */
		if (!leader_valid(m))
			return;
		serve_publish(m);
	}
	out_flush(m);
}

static int lock_state_dir(const char *dir)
{
	char *path = xasprintf("%s/mlmaster.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		fatal("cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		fatal("%s is locked: another mlmaster uses --state-dir %s", path, dir);
	free(path);
	return fd;
}

int main(int argc, char **argv)
{
	static struct master m;
	const char *level, *debug;
	char err[512], *store_uri = NULL;
	uint8_t rnd[8];
	int nargs, rv, sfd, ctl_fd, ag_fd, closed_fd;
	sigset_t sigs;
	bool rotate = false;
	const struct opt tab[] = {
		{"state-dir", OPT_STR, "/var/lib/mlsched/master", "state folder (store, lock)",
		 &m.cfg.state_dir},
		{"listen", OPT_STR, "tcp://127.0.0.1:7070", "URL for mlctl", &m.cfg.listen},
		{"agent-listen", OPT_STR, "tcp://127.0.0.1:7071", "URL for agents",
		 &m.cfg.agent_listen},
		{"store", OPT_STR, NULL, "state store (default sqlite:STATE_DIR/state.db)",
		 &m.cfg.store_uri},
		{"node-timeout", OPT_DUR, "3s", "a node without heartbeat this long is lost",
		 &m.cfg.node_timeout_ms},
		{"grace", OPT_DUR, "10s", "SIGTERM to SIGKILL grace when stopping tasks",
		 &m.cfg.grace_ms},
		{"sched-policy", OPT_STR, NULL,
		 "placement policy for jobs that name none (default: binpack for train and "
		 "batch, spread for serve)",
		 &m.cfg.sched_policy},
		{"plugin-dir", OPT_STR, NULL, "folder of placement policy plugins (*.so)",
		 &m.cfg.plugin_dir},
		{"store-prefix", OPT_STR, NULL,
		 "etcd: the key prefix of this cluster's records (default /mlsched/)",
		 &m.cfg.store_prefix},
		{"lease-ttl", OPT_DUR, "2s", "HA (etcd store): the leader lease; a dead leader is "
		 "replaced within about this long", &m.cfg.lease_ttl_ms},
		{"advertise-client-url", OPT_STR, NULL,
		 "HA: the URL other masters send mlctl to when this one leads (default --listen)",
		 &m.cfg.advertise_client},
		{"advertise-agent-url", OPT_STR, NULL,
		 "HA: the URL other masters send agents to when this one leads (default "
		 "--agent-listen)",
		 &m.cfg.advertise_agents},
		{"metrics-listen", OPT_STR, NULL,
		 "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)",
		 &m.cfg.metrics_listen},
		{"endpoints-dir", OPT_STR, NULL,
		 "write DIR/JOB.json, the healthy endpoints of each serve job, on every change",
		 &m.cfg.endpoints_dir},
		{"queues", OPT_STR, NULL,
		 "team queues with GPU quotas and fair share (a YAML file; see README, Team "
		 "queues)",
		 &m.cfg.queues_file},
		{"insecure", OPT_BOOL, NULL, "accept unsealed traffic (local development only)",
		 &m.cfg.insecure},
		{"pools", OPT_STR, NULL,
		 "node pools file (YAML): costs, and cloud pools the master bursts into",
		 &m.cfg.pools_file},
		{"rotate", OPT_BOOL, NULL,
		 "with `token`: make a new join token (the old one stops admitting agents)",
		 &rotate},
		{"max-conns", OPT_UINT, "1024", "connections the client listener holds (0: no cap)",
		 &m.cfg.max_conns},
		{"max-agent-conns", OPT_UINT, "20000",
		 "connections the agent listener holds (0: no cap)", &m.cfg.max_agent_conns},
		{"rate-limit", OPT_UINT, "1000",
		 "requests a second per client (its key; in the clear, its host), 0: none",
		 &m.cfg.rate_limit},
		{"agent-rate-limit", OPT_UINT, "1000", "requests a second per agent, 0: none",
		 &m.cfg.agent_rate_limit},
		{"log-level", OPT_STR, "info", "error, warn, info or debug", &level},
		{"debug", OPT_STR, "all", "debug subsystems: sched,runc,store,wire or all", &debug},
		{NULL, 0, NULL, NULL, NULL},
	};
	enum log_level lvl;
	unsigned subs;

	rv = opt_parse(tab, argc, argv, &nargs, "mlmaster",
		       "[init | token [--rotate] | admin add|list|revoke [NAME]] [--state-dir DIR]\n"
		       "       [--insecure] [OPTIONS]\n"
		       "  init   create the master's keys, the join token and an admin key\n"
		       "         for mlctl in --state-dir (keeps what exists), print the token\n"
		       "  token  print the join token agents need (mlagent --join TOKEN);\n"
		       "         --rotate makes a new one: the old one admits no new agents\n"
		       "  admin  add NAME: a new mlctl key; list: names and fingerprints;\n"
		       "         revoke NAME: mlctl with that key is refused",
		       err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "mlmaster: %s\n", err);
		return 2;
	}
	if (nargs >= 1 && keys_is_command(argv[0]))
		return keys_command(m.cfg.state_dir, nargs, argv, rotate);
	if (rotate) {
		fprintf(stderr, "mlmaster: --rotate goes with `mlmaster token` only\n");
		return 2;
	}
	if (nargs > 0) {
		fprintf(stderr, "mlmaster: unexpected argument \"%s\" (see mlmaster --help)\n",
			argv[0]);
		return 2;
	}
	if (log_parse_level(level, &lvl) != 0 || log_parse_subs(debug, &subs) != 0) {
		fprintf(stderr, "mlmaster: bad --log-level or --debug value\n");
		return 2;
	}
	log_init("mlmaster", lvl, 2);
	log_set_subs(subs);
	if (m.cfg.max_conns > UINT32_MAX || m.cfg.max_agent_conns > UINT32_MAX ||
	    m.cfg.rate_limit > 1000000 || m.cfg.agent_rate_limit > 1000000) {
		fprintf(stderr, "mlmaster: --max-conns and --max-agent-conns are at most %u, "
				"--rate-limit and --agent-rate-limit at most 1000000\n",
			UINT32_MAX);
		return 2;
	}
	if (m.cfg.node_timeout_ms < 200) {
		fprintf(stderr, "mlmaster: --node-timeout must be at least 200ms\n");
		return 2;
	}
	if (m.cfg.plugin_dir && sched_policy_load_dir(m.cfg.plugin_dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlmaster: --plugin-dir %s: %s\n", m.cfg.plugin_dir, err);
		return 2;
	}
	if (m.cfg.sched_policy && !sched_policy_find(m.cfg.sched_policy)) {
		fprintf(stderr, "mlmaster: --sched-policy: unknown policy \"%s\"\n",
			m.cfg.sched_policy);
		return 2;
	}
	if (m.cfg.pools_file && pools_config(m.cfg.pools_file, &m.pools, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlmaster: --pools %s\n", err);
		return 2;
	}
	if (m.cfg.queues_file &&
	    queues_load_file(m.cfg.queues_file, &m.queues, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlmaster: --queues %s\n", err);
		return 2;
	}
	m.core = sched_new();
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (!m.cfg.insecure) {
		if (keys_load(&m, err, sizeof(err)) != 0) {
			fprintf(stderr, "mlmaster: %s (or pass --insecure for unsealed local "
					"development)\n",
				err);
			return 2;
		}
		net_seal(m.seal, true);
	} else {
		log_warn("--insecure: accepting unsealed, unauthenticated traffic");
	}
	if (m.cfg.endpoints_dir && mkdir_p(m.cfg.endpoints_dir, 0755) != 0)
		fatal("cannot create --endpoints-dir %s: %s", m.cfg.endpoints_dir, strerror(errno));
	if (mkdir_p(m.cfg.state_dir, 0700) != 0)
		fatal("cannot create --state-dir %s: %s", m.cfg.state_dir, strerror(errno));
	lock_state_dir(m.cfg.state_dir);
	if (!m.cfg.store_uri)
		m.cfg.store_uri = store_uri = xasprintf("sqlite:%s/state.db", m.cfg.state_dir);
	if (m.cfg.store_prefix) {
		/* etcd://H:P,H:P plus --store-prefix P = etcd://H:P,H:P/P/ */
		const char *hosts = strncmp(m.cfg.store_uri, "etcd://", 7) == 0
					    ? m.cfg.store_uri + 7
					    : NULL;
		const char *p = m.cfg.store_prefix;
		if (!hosts) {
			fprintf(stderr, "mlmaster: --store-prefix applies to an etcd:// store only\n");
			return 2;
		}
		if (strchr(hosts, '/')) {
			fprintf(stderr, "mlmaster: --store %s has a prefix already; drop it or "
					"--store-prefix\n",
				m.cfg.store_uri);
			return 2;
		}
		while (*p == '/')
			p++;
		if (!*p) {
			fprintf(stderr, "mlmaster: --store-prefix \"%s\" is empty\n",
				m.cfg.store_prefix);
			return 2;
		}
		free(store_uri);
		m.cfg.store_uri = store_uri = xasprintf("%s/%s%s", m.cfg.store_uri, p,
							p[strlen(p) - 1] == '/' ? "" : "/");
	}
	if ((rv = store_open(m.cfg.store_uri, &m.store, err, sizeof(err))) != 0)
		fatal("cannot open store %s: %s", m.cfg.store_uri, err);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(m.boot, sizeof(m.boot), rnd, sizeof(rnd));
	m.out_tail = &m.out_head;

	/* Signals are read through a signalfd in the loop: block them before
	 * nng starts its threads so that none of those takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd: %s", strerror(errno));

	if (!m.cfg.advertise_client)
		m.cfg.advertise_client = m.cfg.listen;
	if (!m.cfg.advertise_agents)
		m.cfg.advertise_agents = m.cfg.agent_listen;
	if ((rv = leader_init(&m)) != 0)
		fatal("cannot start on store %s: %s", m.cfg.store_uri, err_str(rv));
	/* Without an election the state is ours now; an HA master loads it
	 * when it wins. */
	if (!m.ha.on && (rv = state_load(&m)) != 0)
		fatal("cannot load state from %s: %s", m.cfg.store_uri, err_str(rv));
	if (net_listen_raw(m.cfg.listen, &m.ctl, err, sizeof(err)) != 0 ||
	    net_listen_raw(m.cfg.agent_listen, &m.agents, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (net_recv_fd(m.ctl, &ctl_fd) != 0 || net_recv_fd(m.agents, &ag_fd) != 0 ||
	    net_watch_closed(m.agents, &closed_fd) != 0)
		fatal("cannot get socket descriptors");
	guard_init(&m);
	if (telemetry_start(&m, err, sizeof(err)) != 0)
		fatal("--metrics-listen: %s", err);
	log_info("mlmaster %s listening on %s (clients) and %s (agents), store %s",
		 MLSCHED_VERSION, m.cfg.listen, m.cfg.agent_listen, m.cfg.store_uri);
	/* Nodes loaded from the store count as silent from now on. */
	for (size_t i = 0; i < m.nnodes; i++)
		m.nodes[i]->last_seen = now_ms();

	for (;;) {
		struct pollfd p[4] = {
			{.fd = ctl_fd, .events = POLLIN},
			{.fd = ag_fd, .events = POLLIN},
			{.fd = sfd, .events = POLLIN},
			{.fd = closed_fd, .events = POLLIN},
		};
		if (poll(p, 4, TICK_MS) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (p[3].revents & POLLIN) {
			uint32_t ids[64];
			ssize_t n;
			while ((n = read(closed_fd, ids, sizeof(ids))) > 0)
				for (ssize_t k = 0; k < n / (ssize_t)sizeof(*ids); k++)
					agents_closed(&m, ids[k]);
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				log_info("signal %u: shutting down", si.ssi_signo);
				break;
			}
		}
		turn(&m);
	}
	leader_resign(&m);
	telemetry_stop(&m);
	nng_close(m.ctl);
	nng_close(m.agents);
	nng_fini(); /* what nng's threads still hold (replies in flight) */
	guard_free(&m);
	store_close(m.store);
	sched_free(m.core);
	pools_free(m.pools);
	queues_free(m.queues);
	seal_ctx_free(m.seal);
	keys_free(&m);
	free(m.admins);
	free(store_uri);
	return 0;
}

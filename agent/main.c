/*
 * main.c - mlagent: registers with the master, runs tasks through runc
 * under per-task shims, reports their exits, health, utilization and logs
 * (protocol: docs/design-notes.md and master/agents.c).  This file holds the
 * options, the set-up and the poll loop; agent.h lists the other files.
 * The shim of each task is a binary of its own, mlagent-shim (shim_bin.c),
 * found beside this one; "mlagent shim DIR" runs the same code, and is kept
 * so that an agent can still be pointed at itself when debugging.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent.h"
#include "bounds.h"
#include "logcap.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "opt.h"
#include "spec.h"
#include "units.h"
#include "util.h"
#include "wire.h"

/* The address peers use for this node: the host name's first IPv4 address
 * that is not loopback, else loopback (a one-machine cluster). */
static const char *default_address(void)
{
	static char buf[INET_ADDRSTRLEN] = "127.0.0.1";
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res, *r;
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) != 0 || getaddrinfo(host, NULL, &hints, &res) != 0)
		return buf;
	for (r = res; r; r = r->ai_next) {
		struct sockaddr_in *sin = (struct sockaddr_in *)r->ai_addr;
		if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			continue;
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		break;
	}
	freeaddrinfo(res);
	return buf;
}

static void parse_labels(struct agent *a)
{
	char *copy, *tok, *save = NULL, why[160];

	a->labels = cJSON_CreateObject();
	if (!a->cfg.labels || !*a->cfg.labels)
		return;
	copy = xstrdup(a->cfg.labels);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			fatal("--labels: \"%s\" is not key=value", tok);
		*eq = '\0';
		cJSON_DeleteItemFromObjectCaseSensitive(a->labels, tok);
		cJSON_AddStringToObject(a->labels, tok, eq + 1);
	}
	free(copy);
	if (bounds_labels_check(a->labels, why, sizeof(why)) != 0)
		fatal("--%s", why);
}

/* "LO-HI" with 1024 <= LO <= HI <= 65535.  0 or ERR_INVAL with why. */
static int parse_ports(const char *text, uint16_t *lo, uint16_t *hi, char *why, size_t whylen)
{
	unsigned long l, h;
	char *end;

	errno = 0;
	l = strtoul(text, &end, 10);
	if (errno || end == text || *end != '-' || !(end[1] >= '0' && end[1] <= '9')) {
		set_why(why, whylen, "not a range LO-HI (e.g. 20000-29999)");
		return ERR_INVAL;
	}
	text = end + 1;
	h = strtoul(text, &end, 10);
	if (errno || *end) {
		set_why(why, whylen, "not a range LO-HI (e.g. 20000-29999)");
		return ERR_INVAL;
	}
	if (l < 1024) {
		set_why(why, whylen, "%lu is below 1024 (privileged ports are not handed out)", l);
		return ERR_INVAL;
	}
	if (h > 65535) {
		set_why(why, whylen, "%lu is above 65535", h);
		return ERR_INVAL;
	}
	if (l > h) {
		set_why(why, whylen, "LO %lu is above HI %lu", l, h);
		return ERR_INVAL;
	}
	*lo = (uint16_t)l;
	*hi = (uint16_t)h;
	return 0;
}

/* Ports of the range that the kernel may also pick for outgoing
 * connections (net.ipv4.ip_local_port_range) can be taken by any client on
 * the host, and a start on such a port then fails: say so once. */
static void check_ephemeral(uint16_t lo, uint16_t hi)
{
	char *text = NULL;
	unsigned elo, ehi;

	if (file_read("/proc/sys/net/ipv4/ip_local_port_range", 64, &text, NULL) == 0 &&
	    sscanf(text, "%u %u", &elo, &ehi) == 2 && lo <= ehi && elo <= hi)
		log_warn("--ports %u-%u overlaps the kernel's range for outgoing connections, "
			 "%u-%u (net.ipv4.ip_local_port_range): a client on this host may hold a "
			 "port the master hands out, and that task's start fails",
			 lo, hi, elo, ehi);
	free(text);
}

int main(int argc, char **argv)
{
	static struct agent a;
	const char *level, *debug;
	char err[512], hostname[64] = "", *runc_root = NULL;
	uint8_t rnd[8];
	int nargs, rv, sfd;
	sigset_t sigs;
	const struct opt tab[] = {
		{"master", OPT_STR, "tcp://127.0.0.1:7071",
		 "the master's agent URL; several, comma-separated, for HA masters",
		 &a.cfg.master},
		{"name", OPT_STR, NULL, "node name (default: the host name)", &a.cfg.name},
		{"state-dir", OPT_STR, "/var/lib/mlsched/agent", "state folder (bundles, logs)",
		 &a.cfg.state_dir},
		{"gpus", OPT_STR, NULL, "declared GPUs, e.g. 4x80G:A100 (default: NVML)",
		 &a.cfg.gpus},
		{"nvml-lib", OPT_STR, GPU_NVML_LIB,
		 "NVML library to dlopen when --gpus is not given, a name or a path (a node "
		 "without the default one has no GPUs; any other must load)",
		 &a.cfg.nvml_lib},
		{"labels", OPT_STR, NULL, "node labels, e.g. zone=a,pool=onprem", &a.cfg.labels},
		{"address", OPT_STR, NULL,
		 "address other nodes reach this one at (MASTER_ADDR of gangs; default: "
		 "the host name's first IPv4 address)",
		 &a.cfg.address},
		{"cpus", OPT_UINT, NULL, "CPU millicores to offer (default: all online CPUs)",
		 &a.cfg.cpus_milli},
		{"memory", OPT_SIZE, NULL, "memory to offer (default: MemTotal)", &a.cfg.memory},
		{"logs-keep", OPT_SIZE, "1G",
		 "task logs kept on this node (every attempt's; the oldest of ended tasks go "
		 "first)",
		 &a.cfg.logs_keep},
		{"log-max", OPT_SIZE, "64M",
		 "bytes of each task attempt's log kept (its newest; at least 64K)",
		 &a.cfg.log_max},
		{"heartbeat", OPT_DUR, "1s", "heartbeat interval (at least 100ms)",
		 &a.cfg.heartbeat_ms},
		{"runc", OPT_STR, "runc", "runc binary", &a.cfg.runc_bin},
		{"umoci", OPT_STR, "umoci", "umoci binary (unpacks oci:PATH[:TAG] images)",
		 &a.cfg.umoci_bin},
		{"image-cache-max", OPT_UINT, "10",
		 "unpacked oci: images kept in STATE_DIR/images (the least recently used go "
		 "first, never one in use; 0 = no bound)",
		 &a.cfg.image_cache_max},
		{"runc-root", OPT_STR, NULL, "runc --root (default STATE_DIR/runc)",
		 &a.cfg.runc_root},
		{"ports", OPT_STR, "20000-29999",
		 "ports LO-HI the master hands to serving tasks and gang workers ($PORT)",
		 &a.cfg.ports},
		{"join", OPT_STR, NULL, "join token from `mlmaster token`", &a.cfg.join},
		{"metrics-listen", OPT_STR, NULL,
		 "serve Prometheus metrics at http://HOST:PORT/metrics (off by default)",
		 &a.cfg.metrics_listen},
		{"insecure", OPT_BOOL, NULL, "unsealed traffic (local development only)",
		 &a.cfg.insecure},
		{"stop-tasks-on-exit", OPT_BOOL, NULL,
		 "kill the containers when stopped by SIGTERM or SIGINT (default: they keep "
		 "running and the next mlagent with this --state-dir takes them over)",
		 &a.cfg.stop_tasks_on_exit},
		{"log-level", OPT_STR, "info", "error, warn, info or debug", &level},
		{"debug", OPT_STR, "all", "debug subsystems: sched,runc,store,wire or all", &debug},
		{NULL, 0, NULL, NULL, NULL},
	};
	enum log_level lvl;
	unsigned subs;
	char *real;

	if (argc == 3 && strcmp(argv[1], "shim") == 0)
		return shim_main(argv[2]);
	rv = opt_parse(tab, argc, argv, &nargs, "mlagent", "--join TOKEN | --insecure [OPTIONS]",
		       err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "mlagent: %s\n", err);
		return 2;
	}
	if (nargs > 0) {
		fprintf(stderr, "mlagent: unexpected argument \"%s\" (see mlagent --help)\n",
			argv[0]);
		return 2;
	}
	if (log_parse_level(level, &lvl) != 0 || log_parse_subs(debug, &subs) != 0) {
		fprintf(stderr, "mlagent: bad --log-level or --debug value\n");
		return 2;
	}
	if (!a.cfg.insecure && !a.cfg.join) {
		fprintf(stderr, "mlagent: --join TOKEN is required (print it with `mlmaster "
				"token`), or --insecure for unsealed local development\n");
		return 2;
	}
	if (a.cfg.log_max < LOGCAP_MIN) {
		fprintf(stderr, "mlagent: --log-max must be at least 64K\n");
		return 2;
	}
	if (a.cfg.heartbeat_ms < 100) {
		fprintf(stderr, "mlagent: --heartbeat must be at least 100ms\n");
		return 2;
	}
	if (parse_ports(a.cfg.ports, &a.port_lo, &a.port_hi, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlagent: --ports %s: %s\n", a.cfg.ports, err);
		return 2;
	}
	if (!a.cfg.name) {
		gethostname(hostname, sizeof(hostname) - 1);
		a.cfg.name = hostname;
	}
	if (!spec_name_ok(a.cfg.name)) {
		fprintf(stderr,
			"mlagent: node name \"%s\" must be lower-case letters, digits, '.', '_' "
			"or '-' (set it with --name)\n",
			a.cfg.name);
		return 2;
	}
	log_init("mlagent", lvl, 2);
	log_set_subs(subs);
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (shim_locate(err, sizeof(err)) != 0)
		fatal("cannot start tasks: %s", err);
	if (mkdir_p(a.cfg.state_dir, 0750) != 0)
		fatal("cannot create --state-dir %s: %s", a.cfg.state_dir, strerror(errno));
	if (!a.cfg.insecure) {
		uint8_t mpk[SEAL_PK_LEN], secret[SEAL_SECRET_LEN];
		struct seal_key key;
		char *kp = xasprintf("%s/agent.key", a.cfg.state_dir);
		bool created;
		if (seal_token_parse(a.cfg.join, mpk, secret) != 0) {
			fprintf(stderr, "mlagent: --join: not a join token (mlmaster token "
					"prints one)\n");
			return 2;
		}
		if (seal_key_load_or_create(kp, &key, &created, err, sizeof(err)) != 0)
			fatal("%s", err);
		if (created)
			log_info("created the agent key %s", kp);
		free(kp);
		a.seal = seal_ctx_new(&key);
		sodium_memzero(&key, sizeof(key));
		sodium_memzero(secret, sizeof(secret));
		net_seal(a.seal, true);
		net_peer_key(mpk);
	}
	/* Absolute paths: shims and a later agent process (which may run
	 * from another folder) find the same files, and a shim's command line
	 * names its folder the same way every time. */
	if (!(real = realpath(a.cfg.state_dir, NULL)))
		fatal("--state-dir %s: %s", a.cfg.state_dir, strerror(errno));
	snprintf(a.logs_dir, sizeof(a.logs_dir), "%s/logs", real);
	snprintf(a.tasks_dir, sizeof(a.tasks_dir), "%s/tasks", real);
	snprintf(a.images_dir, sizeof(a.images_dir), "%s/images", real);
	if (!a.cfg.runc_root)
		a.cfg.runc_root = runc_root = xasprintf("%s/runc", real);
	free(real);
	if (mkdir_p(a.logs_dir, 0750) != 0 || mkdir_p(a.tasks_dir, 0750) != 0 ||
	    mkdir_p(a.cfg.runc_root, 0700) != 0)
		fatal("cannot create folders under %s: %s", a.cfg.state_dir, strerror(errno));
	if (!realpath(a.cfg.runc_root, a.runc_root))
		fatal("--runc-root %s: %s", a.cfg.runc_root, strerror(errno));
	a.runc.bin = a.cfg.runc_bin;
	{
		/* A node whose runc does not run would take tasks and fail
		 * them all: refuse to start instead. */
		const char *ver[] = {a.cfg.runc_bin, "--version", NULL};
		char out[256] = "";
		int st = 0;
		if (proc_run(ver, -1, &st, out, sizeof(out)) != 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			fatal("%s --version does not run (%s): install runc (apt-get install runc) "
			      "or pass --runc PATH",
			      a.cfg.runc_bin, out[0] ? out : "exit status non-zero");
	}
	a.runc.root = a.runc_root;
	a.cpu_milli = a.cfg.cpus_milli ? (uint32_t)a.cfg.cpus_milli : sysinfo_cpu_milli();
	a.mem_total = a.cfg.memory ? a.cfg.memory : sysinfo_mem_total();
	if (!a.cfg.address)
		a.cfg.address = default_address();
	parse_labels(&a);
	gpus_setup(&a);
	a.events = cJSON_CreateArray();
	a.sender = wire_sender_id(a.cfg.name);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(a.boot, sizeof(a.boot), rnd, sizeof(rnd));
	image_init(&a);
	task_reattach(&a);
	task_logs_trim(&a);
	sysinfo_cpu_pct(&a.cpu);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd: %s", strerror(errno));
	if (session_start(&a, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (telemetry_start(&a, err, sizeof(err)) != 0)
		fatal("--metrics-listen: %s", err);
	check_ephemeral(a.port_lo, a.port_hi);
	log_info("mlagent %s node=%s address=%s master=%s: %u millicores, %" PRIu64
		 " MiB, %zu GPUs, ports %u-%u",
		 MLSCHED_VERSION, a.cfg.name, a.cfg.address, a.cfg.master, a.cpu_milli,
		 a.mem_total >> 20, a.ngpus, a.port_lo, a.port_hi);

	for (;;) {
		uint64_t now = now_ms(), due = a.next_sync;
		size_t np;
		int timeout;
		/* Wake for the next SYNC, a SIGKILL that is due, and the
		 * probes' next check or deadline. */
		for (struct atask *t = a.tasks; t; t = t->next)
			if (t->stopping && !t->killed && t->kill_at < due)
				due = t->kill_at;
		if (task_probe_next(&a) < due)
			due = task_probe_next(&a);
		timeout = due <= now ? 0 : due - now > INT32_MAX ? INT32_MAX : (int)(due - now);
		/* Scrapes are answered between polls: keep them waiting little. */
		if (a.stats.server && timeout > 100)
			timeout = 100;
		/* The master socket, signals, adopted shims' pidfds (readable
		 * when the shim exits) and the sockets of checks in flight. */
		np = 3;
		for (struct atask *t = a.tasks; t; t = t->next)
			np += t->pidfd >= 0;
		if (np > a.npfds_cap) {
			a.npfds_cap = np * 2;
			a.pfds = xrealloc(a.pfds, a.npfds_cap * sizeof(*a.pfds));
		}
		a.pfds[0] = (struct pollfd){.fd = a.sock_fd, .events = POLLIN};
		a.pfds[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
		/* The master connection closing (-1: not watched; poll skips it). */
		a.pfds[2] = (struct pollfd){.fd = a.closed_fds[0], .events = POLLIN};
		np = 3;
		for (struct atask *t = a.tasks; t; t = t->next)
			if (t->pidfd >= 0)
				a.pfds[np++] = (struct pollfd){.fd = t->pidfd, .events = POLLIN};
		np = task_probe_pollfds(&a, np);
		if (poll(a.pfds, np, timeout) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (a.pfds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			bool quit = false;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					quit = true;
			task_reap(&a);
			if (quit) {
				task_shutdown(&a);
				break;
			}
		}
		task_check_adopted(&a);
		/* Before the orders: they may add or remove tasks, and the
		 * pollfd indexes are this turn's. */
		task_probe_step(&a, now_ms());
		if (a.pfds[2].revents & POLLIN)
			session_closed(&a);
		session_receive(&a);
		session_check(&a);
		telemetry_serve(&a);
		task_kill_overdue(&a);
		if (now_ms() >= a.next_sync) {
			/* Once a heartbeat, not on every SYNC (replies re-arm
			 * the poll at once). */
			if (now_ms() - a.beat_at >= a.cfg.heartbeat_ms)
				logcap_tasks(&a, 0);
			session_sync(&a);
		}
	}
	session_close(&a);
	/* nng frees what its threads still hold (a SYNC in flight at the
	 * close) only here; without it a leak checker reports it. */
	nng_fini();
	telemetry_stop(&a);
	if (a.gpu)
		a.gpu->fini(a.gpu_ctx);
	cJSON_Delete(a.events);
	free(a.cap_sent);
	cJSON_Delete(a.labels);
	seal_ctx_free(a.seal);
	free(a.pfds);
	free(runc_root);
	return 0;
}

/*
 * ports.c - each node's port range and which task holds which port.
 *
 * Containers share their node's network namespace, so two tasks on one node
 * must never listen on the same port.  Every agent owns a range (mlagent
 * --ports, reported with its capacity); the master hands a port from it to
 * every serve task and every gang worker when it places them, records it
 * with the task (so it survives a master restart) and sees it free again
 * once the task has ended.  The owner of a port is therefore always a task
 * the master knows; the agent checks at start that no other process on its
 * node holds it.
 *
 * Cost: a take walks the node's live tasks once to mark the ports in use in
 * a bitmap of the range (at most 64 Ki bits), then looks for the
 * first clear bit from a cursor that moves round the range, so a port just
 * freed is not handed out again at once.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"

static bool holds_port(const struct task *t)
{
	return t->port && (t->state == TASK_ASSIGNED || t->state == TASK_STARTING ||
			   t->state == TASK_RUNNING);
}

void ports_range(const struct node *n, uint32_t *lo, uint32_t *hi)
{
	*lo = n->port_lo ? n->port_lo : PORTS_DEFAULT_LO;
	*hi = n->port_hi ? n->port_hi : PORTS_DEFAULT_HI;
}

uint32_t ports_take(struct master *m, struct node *n)
{
	uint32_t lo, hi, span, port = 0;
	uint8_t *used;

	ports_range(n, &lo, &hi);
	span = hi - lo + 1;
	used = xcalloc(span / 8 + 1, 1);
	(void)m;
	for (uint32_t i = 0; i < n->ntasks; i++) {
		const struct task *t = &n->tasks[i].j->tasks[n->tasks[i].idx];
		if (holds_port(t) && t->port >= lo && t->port <= hi)
			used[(t->port - lo) / 8] |= (uint8_t)(1u << ((t->port - lo) % 8));
	}
	for (uint32_t i = 0; i < span; i++) {
		uint32_t off = (n->port_next + i) % span;
		if (!(used[off / 8] & (1u << (off % 8)))) {
			port = lo + off;
			n->port_next = (off + 1) % span;
			break;
		}
	}
	free(used);
	if (!port)
		log_warn("node=%s has no free port left in %u-%u", n->name, lo, hi);
	return port;
}

package kcluster

// Drop makes the link between a and b (broker ids, Controller(), or
// Client for every client connection of the other) lose each write with
// probability p, as a lossy network would look to Kafka code over TCP:
// nothing goes missing, but a lost write stalls its connection for TCP's
// retransmission timeout (200 ms, doubling while the retransmissions are
// lost too) and, after 15 lost retransmissions, the connection breaks with
// ETIMEDOUT. Before that, Kafka's own timeouts usually fire: a client's
// request.timeout.ms, a follower's fetch, a broker's session with the
// controller. Loss is drawn per write (a request or response frame), from
// a generator seeded by the Seed option and the link; the seed is logged.
//
// p <= 0 removes the loss, p >= 1 loses everything (a black hole: unlike
// Cut, nothing is refused or reset, connections just hang). The returned
// undo removes it, as does Heal; a later Drop of the same link replaces
// it.
func (c *Cluster) Drop(a, b int32, p float64) (undo func()) {
	c.mustEmbed("Drop")
	c.cfg.logger.Info("dropping writes on a link", "a", a, "b", b, "probability", p, "seed", c.cfg.seed)
	c.net.SetLoss(a, b, p, c.cfg.seed)
	return c.trackHeal(func() { c.net.SetLoss(a, b, 0, 0) })
}

package client

// SlotRefs is how many Locks and calls of c hold or wait for name's slot
// (LOCK keys): tests poll it to know a call waits in the Client.
func SlotRefs(c *Client, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.slots[name]; s != nil {
		return s.refs
	}
	return 0
}

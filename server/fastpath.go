package server

import "github.com/lockd/lockd/lock"

// The release and extend scripts of the lock libraries, by SHA1, and the
// table command each one is equal to. They run as that command, without the
// interpreter and without a leader's round of script effects; a call whose
// arguments the command cannot take (a key name too long, an extension that
// is not a valid lease) runs in the interpreter instead, as any other
// script. server/fastpath_test.go runs each library's script, read from
// where the library is installed, and its command on random tables and
// arguments, and requires the same replies and the same table after.
const (
	// cmd/lockbench's release, and the one Redis's docs give:
	// if GET == ARGV[1] then return DEL else return 0.
	shaLockbenchRelease = "b998f9dfb154cdbea8cda65ad5177aadf0e945a2"
	// redis-py 4.3.4 Lock: release (GET; not ours: 0; DEL; 1) and
	// reacquire (GET; not ours: 0; PEXPIRE ARGV[2]; 1).
	shaRedisPyRelease   = "c3f8721cbb97f72bc19e972846bd7aaf91901658"
	shaRedisPyReacquire = "1cac51482acf5858da00f6d685d68f886cd6b6b2"
	// go-redsync v4: delete (GET; ours: DEL; no key: -1; else 0) and
	// touch (GET; ours: PEXPIRE ARGV[2]; else 0).
	shaRedsyncDelete = "e950836ed1e694540c503ef9972b8de518044d3b"
	shaRedsyncTouch  = "d75bb8b5bd13532ddedd17762e772346e39b321e"
)

var fastPaths = map[string]func(s *Server, keys, argv []string) (lock.Command, bool){
	shaLockbenchRelease: compareAndDelete(0),
	shaRedisPyRelease:   compareAndDelete(0),
	shaRedsyncDelete:    compareAndDelete(lock.FlagInt),
	shaRedisPyReacquire: compareAndExpire,
	shaRedsyncTouch:     compareAndExpire,
}

// fastPath returns the table command equal to the script sha with these
// keys and arguments, if there is one.
func (s *Server) fastPath(sha string, keys, argv []string) (lock.Command, bool) {
	f := fastPaths[sha]
	if f == nil || len(keys) != 1 || len(argv) == 0 || s.checkName([]byte(keys[0])) != nil || len(argv[0]) > s.cfg.MaxOwnerLen {
		return lock.Command{}, false
	}
	return f(s, keys, argv)
}

// compareAndDelete deletes KEYS[1] if its value is ARGV[1].
func compareAndDelete(flags lock.Flags) func(*Server, []string, []string) (lock.Command, bool) {
	return func(_ *Server, keys, argv []string) (lock.Command, bool) {
		return lock.Command{Op: lock.OpDel, Name: keys[0], Match: argv[0], Flags: lock.FlagIfEq | flags}, true
	}
}

// compareAndExpire gives KEYS[1] a lease of ARGV[2] ms if its value is
// ARGV[1].
func compareAndExpire(s *Server, keys, argv []string) (lock.Command, bool) {
	if len(argv) < 2 {
		return lock.Command{}, false
	}
	ms, err := parseInt([]byte(argv[1]))
	if err != nil || ms > s.cfg.MaxTTL.Milliseconds() {
		return lock.Command{}, false
	}
	c := lock.Command{Op: lock.OpExpire, Name: keys[0], Match: argv[0], Flags: lock.FlagIfEq, TTL: ms}
	if ms <= 0 {
		c.Flags, c.TTL = c.Flags|lock.FlagExpireNow, 0
	}
	return c, true
}

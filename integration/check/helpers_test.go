package check

// Builders for hand-written histories. Times are arbitrary integers; an indeterminate
// op's return time is irrelevant.

func lockOK(c int, name, owner string, call, ret, token int64) Op {
	return Op{Client: c, Kind: KindLock, Name: name, Owner: owner, Call: call, Return: ret, Status: StatusOK, Token: token}
}

func lockUnknown(c int, name, owner string, call int64) Op {
	return Op{Client: c, Kind: KindLock, Name: name, Owner: owner, Call: call, Return: call + 1, Status: StatusUnknown}
}

func unlockOK(c int, name, owner string, call, ret int64, released bool) Op {
	return Op{Client: c, Kind: KindUnlock, Name: name, Owner: owner, Call: call, Return: ret, Status: StatusOK, Released: released}
}

func unlockUnknown(c int, name, owner string, call int64) Op {
	return Op{Client: c, Kind: KindUnlock, Name: name, Owner: owner, Call: call, Return: call + 1, Status: StatusUnknown}
}

func read(c int, name string, call, ret int64, holder string) Op {
	return Op{Client: c, Kind: KindOwner, Name: name, Call: call, Return: ret, Status: StatusOK, Holder: holder}
}

func finalRead(c int, name string, call, ret int64, holder string) Op {
	op := read(c, name, call, ret, holder)
	op.Final = true
	return op
}

// Shape of runClients' histories (variables so a benchmark can change them).
var (
	testUnknownRate  = 10 // 1 in testUnknownRate ops is indeterminate
	testOpsPerClient = 60
)

func setOK(c int, name, owner string, call, ret int64, granted bool) Op {
	return Op{Client: c, Kind: KindSetNX, Name: name, Owner: owner, Call: call, Return: ret, Status: StatusOK, Granted: granted}
}

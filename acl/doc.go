// Package acl is lockd's model of Redis's ACL users: a user (User), the
// rules of ACL SETUSER that change one (Apply), the check of a command and
// its keys against a user (CanRun, CanKey), ACL LIST's and ACL GETUSER's
// rendering of one (Describe, CommandRules, KeyRules), and a set of users
// (Users). It is pure: no I/O, no clock, no randomness, so that the
// replicated table (lock/) applies ACL SETUSER deterministically on every
// node.
//
// The rules, with Redis's meaning: on, off; >password, <password (clear
// text: a node turns them into #hash and !hash, HashRules, before they
// enter the raft log), #hash, !hash (SHA-256, 64 lower-case hex digits),
// nopass, resetpass; ~pattern, %R~pattern, %W~pattern, %RW~pattern,
// allkeys, resetkeys; &pattern, allchannels, resetchannels (pub/sub
// channels: CanChannel, CanPattern); +command, -command,
// +command|subcommand, -command|subcommand, +@category, -@category,
// allcommands, nocommands; reset (which, as in Redis 7, leaves no
// channels). Not supported: selectors, sanitize-payload; each is a syntax
// error.
//
// Limits, so that a user and the set of users stay small whatever a client
// sends (each refusal is an error that changes nothing):
//
//	MaxNameLen      128 bytes of user name
//	MaxUsers        1000 users, the default user included
//	MaxRules        256 command rules per user (after a rule for the same
//	                command or category replaces the earlier one)
//	MaxPatterns     256 key patterns per user, and 256 channel patterns
//	MaxPatternLen   1024 bytes per key or channel pattern
//	MaxPasswords    16 password hashes per user
//	MaxRuleLen      2048 bytes per rule (a clear password included)
//
// Concurrency: a *User and a *Users are never changed once made: Apply
// changes a copy (Clone), Users.With and Users.Without return new sets.
// Any goroutine may read them.
package acl

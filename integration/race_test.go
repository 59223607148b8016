//go:build race

package integration

// raceEnabled builds the lockd binary under test with -race too.
const raceEnabled = true

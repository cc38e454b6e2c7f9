//go:build race

package audit

// raceEnabled is true when the tests run with the race detector, which
// makes the biggest tests too slow for CI.
const raceEnabled = true

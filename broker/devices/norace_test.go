//go:build !race

package devices_test

const raceEnabled = false

package main

import "testing"

func TestServeRefusesBadEventFlags(t *testing.T) {
	for _, c := range []struct{ flag, value, msg string }{
		{"--events-max-streams", "0", "--events-max-streams must be at least 1"},
		{"--events-max-streams-total", "-1", "--events-max-streams-total must be at least 1"},
		{"--events-heartbeat", "-1s", "--events-heartbeat must be positive"},
		{"--events-write-timeout", "0s", "--events-write-timeout must be positive"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			mustFail(t, runCLI(t, nil, "--data-dir", t.TempDir(), "serve", c.flag, c.value), 2, c.msg)
		})
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestServeWithUnreachableRedisSaysSoInTheJSONLog starts the real binary
// with a --redis nothing listens on: the start logs an error naming that
// address, and neither it nor a request that needs Redis puts a line that
// is not JSON into the log: go-redis's own lines (the pool's failed dials)
// go through the server's slog logger.
func TestServeWithUnreachableRedisSaysSoInTheJSONLog(t *testing.T) {
	dir := t.TempDir()
	addr := closedAddr(t)
	p := startServeProcess(t, dir, "--redis", "redis://"+addr+"/0")
	url := listeningAddr(p.logs.String())
	env := map[string]string{"BULKHEAD_ADDR": url, "BULKHEAD_DATA_DIR": dir}
	mustSucceed(t, runCLI(t, env, "tenant", "create", "acme"))
	r := runCLI(t, env, "key", "create", "acme", "--role", "reader")
	mustSucceed(t, r)
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/collections", nil)
	req.Header.Set("Authorization", "Bearer "+field(r.stdout, "Token"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // limited locally meanwhile
		t.Errorf("a request while Redis is down: %d", resp.StatusCode)
	}

	var named, fromRedis bool
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		var line struct {
			Level, Msg, Component string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("a log line is not JSON: %q", sc.Text())
			continue
		}
		if line.Level == "ERROR" && strings.Contains(line.Msg, "redis is not reachable at "+addr) &&
			strings.Contains(line.Msg, "--redis") {
			named = true
		}
		fromRedis = fromRedis || line.Component == "redis"
	}
	if !fromRedis {
		t.Errorf("go-redis logged nothing through the server's logger:\n%s", p.logs.String())
	}
	if !named {
		t.Errorf("no error at start names Redis's address %s:\n%s", addr, p.logs.String())
	}
}

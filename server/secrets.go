package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/datadir"
)

// File names inside the data directory.
const (
	operatorTokenFile = "operator.token"
	cursorKeyFile     = "cursor.key"
	catalogFile       = "control.db"
)

// operatorTokenPrefix marks operator tokens; tenant keys start with "bk_".
const operatorTokenPrefix = "bko_"

// cursorKeyLen is the size of the list-cursor HMAC key.
const cursorKeyLen = 32

// ReadOperatorToken returns the operator token stored in dataDir, for
// clients (the CLI) that run on the server's machine.
func ReadOperatorToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, operatorTokenFile))
	if err != nil {
		return "", fmt.Errorf("read operator token: %w (start the server once with this data directory, or give the token itself)", err)
	}
	tok := strings.TrimSpace(string(b))
	if !strings.HasPrefix(tok, operatorTokenPrefix) || len(tok) < len(operatorTokenPrefix)+16 {
		return "", fmt.Errorf("read operator token: %s is not an operator token (delete it and restart the server to make a new one)",
			filepath.Join(dataDir, operatorTokenFile))
	}
	return tok, nil
}

// loadOperatorToken returns the SHA-256 of the operator token in dataDir,
// creating the token first if there is none; created reports that.
func loadOperatorToken(dataDir string) (hash [32]byte, created bool, err error) {
	path := filepath.Join(dataDir, operatorTokenFile)
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return hash, false, fmt.Errorf("make operator token: %w", err)
	}
	tok := operatorTokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	created, err = datadir.WriteOnce(path, []byte(tok+"\n"))
	if err != nil {
		return hash, false, fmt.Errorf("write operator token: %w", err)
	}
	if !created {
		if tok, err = ReadOperatorToken(dataDir); err != nil {
			return hash, false, err
		}
	}
	return sha256.Sum256([]byte(tok)), created, nil
}

// loadCursorKey returns the cursor HMAC key in dataDir, creating it once.
func loadCursorKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, cursorKeyFile)
	key := make([]byte, cursorKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make cursor key: %w", err)
	}
	created, err := datadir.WriteOnce(path, key)
	if err != nil {
		return nil, fmt.Errorf("write cursor key: %w", err)
	}
	if created {
		return key, nil
	}
	key, err = os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cursor key: %w", err)
	}
	if len(key) < cursorKeyLen {
		return nil, fmt.Errorf("read cursor key: %s holds %d bytes, need %d (delete it to make a new one; outstanding list cursors become invalid)",
			path, len(key), cursorKeyLen)
	}
	return key, nil
}

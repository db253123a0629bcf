// Package kmsfake is a TEST DOUBLE of AWS KMS, not AWS KMS. It serves the
// small part of the KMS JSON 1.1 protocol (X-Amz-Target: TrentService.*) that
// secrets-broker uses, GenerateDataKey, Encrypt and Decrypt, with real
// AES-256-GCM and the encryption context as associated data, so that the real
// aws-sdk-go-v2 client can be tested on loopback. It can answer with
// ThrottlingException, AccessDeniedException, DisabledException,
// NotFoundException, IncorrectKeyException and InvalidCiphertextException.
//
// It does not check SigV4 signatures (it only requires that one is present),
// implements no key policy language, grants, aliases or key rotation, and its
// ciphertext blobs have nothing in common with real KMS blobs.
package kmsfake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// Server is a running test double.
type Server struct {
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	keys     map[string]cipher.AEAD
	denied   map[string]bool
	disabled map[string]bool
	throttle int
	calls    map[string]int
	latency  time.Duration
	inFlight int
	maxIn    int
}

// SetLatency makes every request take at least d (to observe concurrency).
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// MaxInFlight is the most requests that were being served at once.
func (s *Server) MaxInFlight() int { s.mu.Lock(); defer s.mu.Unlock(); return s.maxIn }

// Start serves on 127.0.0.1 and stops when Close is called.
func Start() *Server {
	s := &Server{keys: map[string]cipher.AEAD{}, denied: map[string]bool{}, disabled: map[string]bool{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CreateKey makes a new symmetric key and returns its ARN.
func (s *Server) CreateKey(region string) string {
	raw := make([]byte, 32)
	rand.Read(raw)
	block, _ := aes.NewCipher(raw)
	aead, _ := cipher.NewGCM(block)
	id := make([]byte, 16)
	rand.Read(id)
	arn := fmt.Sprintf("arn:aws:kms:%s:111122223333:key/%x-%x-%x-%x-%x", region, id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
	s.mu.Lock()
	s.keys[arn] = aead
	s.mu.Unlock()
	return arn
}

// Deny makes every request for arn fail with AccessDeniedException.
func (s *Server) Deny(arn string, denied bool) { s.mu.Lock(); s.denied[arn] = denied; s.mu.Unlock() }

// Disable makes every request for arn fail with DisabledException.
func (s *Server) Disable(arn string, disabled bool) {
	s.mu.Lock()
	s.disabled[arn] = disabled
	s.mu.Unlock()
}

// Throttle makes the next n requests fail with ThrottlingException.
func (s *Server) Throttle(n int) { s.mu.Lock(); s.throttle = n; s.mu.Unlock() }

// Calls returns how many requests for operation ("Decrypt", ...) arrived,
// throttled ones included.
func (s *Server) Calls(op string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[op] }

type request struct {
	KeyID             string            `json:"KeyId"`
	KeySpec           string            `json:"KeySpec"`
	NumberOfBytes     int               `json:"NumberOfBytes"`
	Plaintext         []byte            `json:"Plaintext"`
	CiphertextBlob    []byte            `json:"CiphertextBlob"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
}

type apiError struct {
	status int
	typ    string
	msg    string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	if r.Method != http.MethodPost || !ok {
		writeErr(w, apiError{400, "UnknownOperationException", "not a KMS JSON 1.1 request"})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeErr(w, apiError{400, "MissingAuthenticationTokenException", "request is not signed"})
		return
	}
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeErr(w, apiError{400, "SerializationException", err.Error()})
		return
	}
	s.mu.Lock()
	s.calls[op]++
	throttled := s.throttle > 0
	if throttled {
		s.throttle--
	}
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	latency := s.latency
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inFlight--; s.mu.Unlock() }()
	time.Sleep(latency)
	if throttled {
		writeErr(w, apiError{400, "ThrottlingException", "Rate exceeded"})
		return
	}
	var resp any
	var aerr *apiError
	switch op {
	case "GenerateDataKey":
		resp, aerr = s.generateDataKey(req)
	case "Encrypt":
		resp, aerr = s.encrypt(req.KeyID, req.Plaintext, req.EncryptionContext)
	case "Decrypt":
		resp, aerr = s.decrypt(req)
	default:
		aerr = &apiError{400, "UnknownOperationException", "operation " + op + " is not implemented by the test double"}
	}
	if aerr != nil {
		writeErr(w, *aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(resp)
}

func writeErr(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func (s *Server) key(arn string) (cipher.AEAD, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[arn]
	switch {
	case !ok:
		return nil, &apiError{400, "NotFoundException", "Key '" + arn + "' does not exist"}
	case s.denied[arn]:
		return nil, &apiError{400, "AccessDeniedException", "User is not authorized to perform kms:Decrypt on resource " + arn}
	case s.disabled[arn]:
		return nil, &apiError{400, "DisabledException", arn + " is disabled."}
	}
	return k, nil
}

func contextAAD(c map[string]string) []byte {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(c[k])))
		out = append(out, c[k]...)
	}
	return out
}

func (s *Server) generateDataKey(req request) (any, *apiError) {
	if req.KeySpec != "AES_256" && req.NumberOfBytes != 32 {
		return nil, &apiError{400, "ValidationException", "KeySpec must be AES_256"}
	}
	pt := make([]byte, 32)
	rand.Read(pt)
	out, aerr := s.encrypt(req.KeyID, pt, req.EncryptionContext)
	if aerr != nil {
		return nil, aerr
	}
	m := out.(map[string]any)
	m["Plaintext"] = pt
	return m, nil
}

func (s *Server) encrypt(arn string, pt []byte, ec map[string]string) (any, *apiError) {
	k, aerr := s.key(arn)
	if aerr != nil {
		return nil, aerr
	}
	blob := []byte("FAKEKMS1")
	blob = binary.BigEndian.AppendUint16(blob, uint16(len(arn)))
	blob = append(blob, arn...)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	blob = append(blob, nonce...)
	blob = k.Seal(blob, nonce, pt, contextAAD(ec))
	return map[string]any{"CiphertextBlob": blob, "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

func (s *Server) decrypt(req request) (any, *apiError) {
	blob := req.CiphertextBlob
	invalid := &apiError{400, "InvalidCiphertextException", ""}
	if len(blob) < 10 || string(blob[:8]) != "FAKEKMS1" {
		return nil, invalid
	}
	n := int(binary.BigEndian.Uint16(blob[8:10]))
	if len(blob) < 10+n+12+16 {
		return nil, invalid
	}
	arn := string(blob[10 : 10+n])
	if req.KeyID != "" && req.KeyID != arn {
		return nil, &apiError{400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation."}
	}
	k, aerr := s.key(arn)
	if aerr != nil {
		return nil, aerr
	}
	nonce := blob[10+n : 10+n+12]
	pt, err := k.Open(nil, nonce, blob[10+n+12:], contextAAD(req.EncryptionContext))
	if err != nil {
		return nil, invalid
	}
	return map[string]any{"Plaintext": pt, "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

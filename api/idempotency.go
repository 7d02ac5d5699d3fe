package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Creating an order is idempotent under an Idempotency-Key header: a
// mini-program retrying POST /v1/orders after a timeout gets the order its
// first attempt made, never a second one. It holds across API replicas and
// restarts because nothing is kept here: the order number is derived from
// the user and the key, so every attempt names the same workflow
// (order-<no>) and Temporal starts it at most once (update-with-start,
// conflict policy USE_EXISTING: a concurrent attempt joins the running
// one); once the order is stored, its row answers, for as long as the order
// exists (longer than the workflow's retention). The key is bound to its
// order from then on: a client uses a new key (a UUID) for each order.
//
// The request an attempt carries is compared by a hash of its normalised
// form — the items merged per product and sorted, the trimmed address —
// kept in the workflow's memo (for a creation that was refused, which
// leaves no row) and recomputed from the row; a different request under the
// same key is 409 IDEMPOTENCY_KEY_REUSED.

// IdempotencyKeyHeader is the header a client names an order attempt by.
const IdempotencyKeyHeader = "Idempotency-Key"

// An Idempotency-Key is 8–64 of [A-Za-z0-9._:-] (a UUID, a ULID, …): long
// enough not to be a counter two attempts share by accident.
const (
	minIdempotencyKey = 8
	maxIdempotencyKey = 64
)

// Memo fields of a keyed order's workflow.
const (
	memoRequestHash = "request_hash" // requestHash of the attempt that started it
	memoAttempt     = "attempt"      // a random id of that attempt: who started it
)

func validIdempotencyKey(k string) bool {
	if len(k) < minIdempotencyKey || len(k) > maxIdempotencyKey {
		return false
	}
	for _, r := range k {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("._:-", r)) {
			return false
		}
	}
	return true
}

// keyedOrderNo is the order number of user uid's order under key: 22
// digits, "9" and 21 from SHA-256 of the pair, so it never meets the
// numbers newOrderNo makes (they start with the year, 20xx) and two
// attempts of one order always meet.
func keyedOrderNo(uid int64, key string) string {
	sum := sha256.Sum256([]byte("ordersaga idempotency-key v1\x00" + strconv.FormatInt(uid, 10) + "\x00" + key))
	n := new(big.Int).SetBytes(sum[:16])
	digits := n.Mod(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)).String()
	return "9" + strings.Repeat("0", 21-len(digits)) + digits
}

// requestHash identifies what an order asks for: its items merged per
// product, in product order, and its address.
func requestHash(items []workflows.Item, address string) string {
	lines := slices.Clone(items)
	slices.SortFunc(lines, func(a, b workflows.Item) int { return cmp.Compare(a.ProductID, b.ProductID) })
	h := sha256.New()
	for _, it := range lines {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], uint64(it.ProductID))
		binary.BigEndian.PutUint64(b[8:], uint64(it.Quantity))
		h.Write(b[:])
	}
	h.Write([]byte{0})
	h.Write([]byte(address))
	return hex.EncodeToString(h.Sum(nil))
}

// rowRequestHash is requestHash of a stored order.
func rowRequestHash(o store.Order) string {
	items := make([]workflows.Item, 0, len(o.Items))
	for _, it := range o.Items {
		items = append(items, workflows.Item{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return requestHash(items, hashedAddress(o.Address, shippingAddressJSON(o.ShipTo)))
}

// hashedAddress is the address as requestHash takes it: the one line, and
// the phone a structured address has besides.
func hashedAddress(line string, a *workflows.ShippingAddress) string {
	if a == nil {
		return line
	}
	return line + "\x00" + a.Phone
}

// keyedAttempt is one attempt at a keyed order.
type keyedAttempt struct {
	key     string
	orderNo string
	hash    string
	id      string // random: tells whether this attempt started the workflow
}

func newKeyedAttempt(uid int64, key string, items []workflows.Item, address string) keyedAttempt {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return keyedAttempt{key: key, orderNo: keyedOrderNo(uid, key), hash: requestHash(items, address), id: hex.EncodeToString(b[:])}
}

func (k keyedAttempt) memo() map[string]any {
	return map[string]any{memoRequestHash: k.hash, memoAttempt: k.id}
}

// answerStored answers a keyed attempt from the order's row, if there is
// one: 200 with the order when the request is the one that made it, 409
// otherwise. False when there is no row (yet).
func (s *server) answerStored(c *gin.Context, k keyedAttempt, uid int64) bool {
	o, err := s.Store.GetOrder(c.Request.Context(), k.orderNo)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		internalError(c, err)
		return true
	}
	if o.UserID != uid || rowRequestHash(o) != k.hash {
		s.keyReused(c, k)
		return true
	}
	s.replayed(c, k)
	c.JSON(http.StatusOK, orderFromRow(o))
	return true
}

func (s *server) keyReused(c *gin.Context, k keyedAttempt) {
	s.ordersPlaced.WithLabelValues("idempotency_key_reused").Inc()
	abortError(c, http.StatusConflict, CodeIdempotencyKeyReused,
		"this Idempotency-Key already placed an order with other items or address; use a new key for a new order")
}

func (s *server) replayed(c *gin.Context, k keyedAttempt) {
	s.idempotentReplays.Inc()
	s.Logger.Info("order creation repeated under its Idempotency-Key: answered with the order it made",
		"request_id", c.GetString(ctxRequestID), "order_no", k.orderNo, "workflow_id", workflows.WorkflowID(k.orderNo))
}

// keyedStarted answers a keyed attempt whose update-with-start returned
// view: 201 if this attempt started the workflow, 200 if it joined one an
// earlier attempt of the same request started, 409 if that attempt asked
// for something else.
func (s *server) keyedStarted(c *gin.Context, k keyedAttempt, view workflows.OrderView, address string, shipTo *workflows.ShippingAddress) {
	memo, err := s.workflowMemo(c.Request.Context(), k.orderNo)
	if err != nil {
		// The order exists and is this user's; only who started it is unknown.
		unavailable(c, fmt.Errorf("describe keyed order %s: %w", k.orderNo, err))
		return
	}
	switch {
	case memo[memoAttempt] == k.id:
		s.ordersPlaced.WithLabelValues("created").Inc()
		c.JSON(http.StatusCreated, orderFromView(view, address, shipTo))
	case memo[memoRequestHash] == k.hash:
		s.replayed(c, k)
		c.JSON(http.StatusOK, orderFromView(view, address, shipTo))
	default:
		s.keyReused(c, k)
	}
}

// joinedOtherRequest answers 409 when a keyed attempt that failed with the
// workflow's refusal (out of stock, …) had joined a workflow an attempt of
// another request started: the refusal was that request's.
func (s *server) joinedOtherRequest(c *gin.Context, k keyedAttempt, err error) bool {
	if _, refused := applicationError(err); !refused {
		return false
	}
	memo, merr := s.workflowMemo(c.Request.Context(), k.orderNo)
	if merr != nil || memo[memoAttempt] == k.id || memo[memoRequestHash] == k.hash {
		return false
	}
	s.keyReused(c, k)
	return true
}

// keyedClosed answers a keyed attempt whose workflow has ended without a
// row: its creation was refused (out of stock, unknown product). The same
// request gets the same refusal; it takes a new key to try again.
func (s *server) keyedClosed(c *gin.Context, k keyedAttempt, startErr error) {
	ctx := c.Request.Context()
	if s.answerStored(c, k, c.GetInt64(ctxUserID)) { // ended after being stored, meanwhile
		return
	}
	memo, err := s.workflowMemo(ctx, k.orderNo)
	if err != nil {
		unavailable(c, fmt.Errorf("describe keyed order %s after %v: %w", k.orderNo, startErr, err))
		return
	}
	if memo[memoRequestHash] != k.hash {
		s.keyReused(c, k)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var view workflows.OrderView
	if err := s.Temporal.GetWorkflow(ctx, workflows.WorkflowID(k.orderNo), "").Get(ctx, &view); err != nil {
		unavailable(c, fmt.Errorf("result of keyed order %s: %w", k.orderNo, err))
		return
	}
	if httpStatus, code, ok := refusalStatus(view.RefusalType); ok && view.Status == status.Refused {
		s.replayed(c, k)
		abortError(c, httpStatus, code, view.RefusalMessage)
		return
	}
	unavailable(c, fmt.Errorf("keyed order %s ended %s without a row", k.orderNo, view.Status))
}

// workflowMemo reads the string fields of the order workflow's memo.
func (s *server) workflowMemo(ctx context.Context, orderNo string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(orderNo), "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, p := range desc.GetWorkflowExecutionInfo().GetMemo().GetFields() {
		var v string
		if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

// alreadyStarted reports whether err is Temporal refusing to start a
// workflow whose ID was used (a closed one, under REJECT_DUPLICATE).
func alreadyStarted(err error) bool {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &started)
}

package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/retention"
)

// fieldError is a bad request naming the offending field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func invalid(field, format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, &fieldError{field, fmt.Sprintf(format, args...)})
}

// recordNamer names record i of a request: the field path ("spans[3]")
// and how to identify it to a person ("trace_id ..., span_id ...").
type recordNamer func(i int) (field, ids string)

// toConnect maps a ledger error to a Connect error. name names the record a
// *ledger.RecordError refers to. Unknown
// errors are logged once and become CodeInternal with a fixed message, so
// that internal detail never reaches the client.
func toConnect(ctx context.Context, log *slog.Logger, procedure string, err error, name recordNamer) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	var re *ledger.RecordError
	if errors.As(err, &re) && name != nil {
		field, ids := name(re.Record)
		var mv *ledger.MissingVersionError
		var conflict *ledger.ConflictError
		switch {
		case errors.As(re.Err, &mv):
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s.versions.%s: %s version %x is not registered in this tenant; register it with RegisterVersion first", field, mv.Kind, mv.Kind, mv.ID))
		case errors.As(re.Err, &conflict):
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s (%s): %v", field, ids, conflict))
		case errors.Is(re.Err, ledger.ErrTraceClosed):
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s (%s): %v", field, ids, re.Err))
		case errors.Is(re.Err, ledger.ErrInvalid):
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %v", field, re.Err))
		}
	}
	var space *ledger.SpaceError
	switch {
	case errors.As(err, &space):
		return connect.NewError(connect.CodeResourceExhausted, space)
	case errors.Is(err, ledger.ErrBucketExpired), errors.Is(err, ledger.ErrTraceClosed):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ledger.ErrFailed):
		// The ledger logged the cause once; the client learns what to expect.
		return connect.NewError(connect.CodeUnavailable, errors.New("the ledger stopped accepting writes after a storage failure and must be restarted by its operator; retrying after that is safe"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded; the request may have been applied, retrying it is safe"))
	case errors.Is(err, ledger.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, ledger.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, ledger.ErrAlreadyExists):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, ledger.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("server is shutting down"))
	case errors.Is(err, retention.ErrPolicyChanged):
		// Spans classified again after each of several policy changes
		// (retention.ChangingError): nothing was appended.
		return connect.NewError(connect.CodeAborted, err)
	}
	log.ErrorContext(ctx, "request failed", "procedure", procedure, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// The error types no retry can fix: an activity failing with one of them is
// not retried, whatever its own error says.
var businessErrorTypes = []string{
	ErrTypeOutOfStock, ErrTypeUnknownProduct, ErrTypeInvalidOrder, ErrTypeStatusConflict,
	ErrTypeNotPayable, ErrTypeWechatRefused,
}

// errorType is the ApplicationError type in err's chain ("" when none).
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// errorMessage is the message of the ApplicationError in err's chain, or
// err's text.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// refuse is the error an update returns to the API for a business reason:
// its type says which (ErrType*), the message says why.
func refuse(errType, format string, args ...any) error {
	return newRefusal(errType, format, args...).err()
}

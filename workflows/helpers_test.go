package workflows

import (
	"errors"

	"github.com/stretchr/testify/mock"
)

var mockAny = mock.Anything

func errorsAs(err error, target any) bool { return errors.As(err, target) }

package workflows

import (
	"testing"
	"time"
)

// The waits between rounds double up to their cap and stay there, however
// many rounds: a day doubled 20 times or 1000 times is still two days (a
// shift by the round count overflowed, and a negative wait asked WeChat in
// a loop).
func TestBackoffDoublesToItsCapAndStaysThere(t *testing.T) {
	for _, tt := range []struct {
		first time.Duration
		n     int
		most  time.Duration
		want  time.Duration
	}{
		{day, 1, shippingAskMax, day},
		{day, 2, shippingAskMax, 2 * day},
		{day, 3, shippingAskMax, 2 * day},
		{day, 18, shippingAskMax, 2 * day},
		{day, 1000, shippingAskMax, 2 * day},
		{shippingUploadRetryFirst, 1, shippingUploadRetryMax, time.Minute},
		{shippingUploadRetryFirst, 4, shippingUploadRetryMax, 8 * time.Minute},
		{shippingUploadRetryFirst, 7, shippingUploadRetryMax, time.Hour},
		{shippingUploadRetryFirst, 5000, shippingUploadRetryMax, time.Hour},
	} {
		if got := backoff(tt.first, tt.n, tt.most); got != tt.want {
			t.Errorf("backoff(%v, %d, %v) = %v, want %v", tt.first, tt.n, tt.most, got, tt.want)
		}
	}
}

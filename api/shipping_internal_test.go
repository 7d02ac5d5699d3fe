package api

import (
	"strings"
	"testing"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// WeChat's carrier codes are upper case ("SF", "YTO", "007EX"): a code
// typed in lower case is sent as WeChat knows it, and SF Express written
// so still needs its phone.
func TestShipRequestTakesCarrierCodesAsWeChatWritesThem(t *testing.T) {
	noPhone := store.Order{OrderNo: "2026120700000000000001"}
	withPhone := store.Order{OrderNo: "2026120700000000000002", ShipTo: store.ShipTo{Phone: "13812345678"}}
	tests := []struct {
		name        string
		order       store.Order
		company     string
		wantCompany string
		wantProblem string
	}{
		{"sf without a phone", noPhone, "sf", "", "packages[0].express_company: SF Express needs a phone"},
		{"Sf without a phone", noPhone, " Sf ", "", "packages[0].express_company: SF Express needs a phone"},
		{"sf with the receiver's phone", withPhone, "sf", "SF", ""},
		{"yto", noPhone, "yto", "YTO", ""},
		{"YTO as it is", noPhone, "YTO", "YTO", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := shipRequest{LogisticsType: workflows.LogisticsExpress,
				Packages: []workflows.Package{{ExpressCompany: tc.company, TrackingNo: "T100"}}}
			got, problem := r.shipment(tc.order)
			switch {
			case tc.wantProblem != "":
				if !strings.Contains(problem, tc.wantProblem) {
					t.Fatalf("problem %q, want %q (shipment %+v)", problem, tc.wantProblem, got)
				}
			case problem != "":
				t.Fatalf("refused: %s", problem)
			case got.Packages[0].ExpressCompany != tc.wantCompany:
				t.Errorf("express_company %q, want %q", got.Packages[0].ExpressCompany, tc.wantCompany)
			}
		})
	}
}

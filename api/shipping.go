package api

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"ordersaga/internal/store"
	"ordersaga/internal/wxapp"
	"ordersaga/workflows"
)

// What a shipment is: where an order goes (a structured address, as
// wx.chooseAddress gives it) and how it left the shop (WeChat's logistics
// types and packages), checked before anything reaches the workflow.

// Limits of a structured address (generous for Chinese addresses).
const (
	maxReceiverName = 50
	maxRegionName   = 30
	maxAddressLine  = 200
)

var (
	// A mainland mobile number (with +86 or not), or a landline with its
	// area code and an extension — what wx.chooseAddress's telNumber holds.
	mobilePhone   = regexp.MustCompile(`^(?:\+?86[- ]?)?1[3-9][0-9]{9}$`)
	landlinePhone = regexp.MustCompile(`^0[0-9]{2,3}-?[0-9]{7,8}(?:-[0-9]{1,6})?$`)
	postalCode    = regexp.MustCompile(`^[0-9]{6}$`)
	// WeChat's carrier codes ("SF", "YTO", "ZTO", "JD", "EMS", …), upper
	// case; one typed in lower case is taken upper-cased.
	expressCompany = regexp.MustCompile(`^[A-Z0-9_]{1,32}$`)
)

func validPhone(p string) bool { return mobilePhone.MatchString(p) || landlinePhone.MatchString(p) }

// checkText trims s and says what is wrong with it as field ("" when
// nothing): required, at most max characters, one line of print.
func checkText(field string, s *string, required bool, max int) string {
	*s = strings.TrimSpace(*s)
	switch {
	case *s == "" && required:
		return field + " is required"
	case utf8.RuneCountInString(*s) > max:
		return fmt.Sprintf("%s must be at most %d characters", field, max)
	case hasControl(*s):
		return field + " must not contain control characters"
	}
	return ""
}

// validateShippingAddress normalises a structured address and says what is
// wrong with it ("" when nothing), naming the field.
func validateShippingAddress(a *workflows.ShippingAddress) string {
	for _, f := range []struct {
		name     string
		v        *string
		required bool
		max      int
	}{
		{"shipping_address.receiver_name", &a.ReceiverName, true, maxReceiverName},
		{"shipping_address.phone", &a.Phone, true, 32},
		{"shipping_address.province", &a.Province, true, maxRegionName},
		{"shipping_address.city", &a.City, true, maxRegionName},
		{"shipping_address.district", &a.District, false, maxRegionName},
		{"shipping_address.detail", &a.Detail, true, maxAddressLine},
		{"shipping_address.postal_code", &a.PostalCode, false, 6},
	} {
		if problem := checkText(f.name, f.v, f.required, f.max); problem != "" {
			return problem
		}
	}
	if !validPhone(a.Phone) {
		return "shipping_address.phone must be a mainland mobile number (13812345678) or a landline with its area code (020-81167888)"
	}
	if a.PostalCode != "" && !postalCode.MatchString(a.PostalCode) {
		return "shipping_address.postal_code must be 6 digits"
	}
	return ""
}

// addressLine writes a structured address out as the one-line address
// older readers of an order know — without the phone, which only the
// structured address carries.
func addressLine(a workflows.ShippingAddress) string {
	line := a.ReceiverName + ", " + a.Province + a.City + a.District + a.Detail
	if a.PostalCode != "" {
		line += " " + a.PostalCode
	}
	return line
}

// shippingAddressJSON is an order's structured address as the API shows it
// (nil when the order has none).
func shippingAddressJSON(t store.ShipTo) *workflows.ShippingAddress {
	if t.Empty() {
		return nil
	}
	return &workflows.ShippingAddress{ReceiverName: t.Name, Phone: t.Phone, Province: t.Province, City: t.City,
		District: t.District, Detail: t.Detail, PostalCode: t.PostalCode}
}

// shipmentJSON is how an order was shipped, as the API shows it.
type shipmentJSON struct {
	LogisticsType string              `json:"logistics_type"`
	Packages      []workflows.Package `json:"packages,omitempty"`
	ItemDesc      string              `json:"item_desc,omitempty"`
}

func shipmentFromRow(sh *store.Shipment) *shipmentJSON {
	if sh == nil {
		return nil
	}
	out := &shipmentJSON{LogisticsType: sh.LogisticsType, ItemDesc: sh.ItemDesc}
	for _, p := range sh.Packages {
		out.Packages = append(out.Packages, workflows.Package{ExpressCompany: p.ExpressCompany, TrackingNo: p.TrackingNo})
	}
	return out
}

// shipRequest is the admin's ship body. The body of before shipping
// management, {"tracking_no"} (or none), still ships the order; WeChat
// cannot be told of such a shipment (no carrier), so under shipping
// management the order is flagged SHIPPING_UPLOAD_FAILED for a person.
type shipRequest struct {
	TrackingNo     string              `json:"tracking_no"`
	LogisticsType  string              `json:"logistics_type"`
	Packages       []workflows.Package `json:"packages"`
	IsAllDelivered *bool               `json:"is_all_delivered"`
	ItemDesc       *string             `json:"item_desc"`
	ConsignorPhone string              `json:"consignor_phone"`
}

var logisticsTypes = []string{workflows.LogisticsExpress, workflows.LogisticsSameCity, workflows.LogisticsVirtual, workflows.LogisticsPickup}

// shipment checks a ship body against the order and returns the ship
// update's argument, or what is wrong, naming the field.
func (r *shipRequest) shipment(o store.Order) (workflows.ShipRequest, string) {
	r.TrackingNo = strings.TrimSpace(r.TrackingNo)
	if r.LogisticsType == "" {
		if len(r.Packages) > 0 || r.ItemDesc != nil || r.IsAllDelivered != nil || r.ConsignorPhone != "" {
			return workflows.ShipRequest{}, "logistics_type is required (express, same_city, virtual or pickup)"
		}
		if !validTrackingNo(r.TrackingNo) {
			return workflows.ShipRequest{}, fmt.Sprintf("tracking_no must be at most %d letters, digits, '-' or '_'", maxTrackingNo)
		}
		return workflows.ShipRequest{TrackingNo: r.TrackingNo}, ""
	}
	if !slices.Contains(logisticsTypes, r.LogisticsType) {
		return workflows.ShipRequest{}, fmt.Sprintf("logistics_type must be one of %s", strings.Join(logisticsTypes, ", "))
	}
	if r.TrackingNo != "" {
		return workflows.ShipRequest{}, "tracking_no: with logistics_type the tracking numbers go in packages[].tracking_no"
	}
	if r.IsAllDelivered != nil && !*r.IsAllDelivered {
		return workflows.ShipRequest{}, "is_all_delivered: ship once every package has left (WeChat counts a second report as the one change it allows)"
	}
	out := workflows.ShipRequest{LogisticsType: r.LogisticsType}
	if r.ConsignorPhone = strings.TrimSpace(r.ConsignorPhone); r.ConsignorPhone != "" {
		if !validPhone(r.ConsignorPhone) {
			return workflows.ShipRequest{}, "consignor_phone must be a mainland mobile number or a landline with its area code"
		}
		out.ConsignorPhone = r.ConsignorPhone
	}
	if problem := r.packages(o, &out); problem != "" {
		return workflows.ShipRequest{}, problem
	}
	if r.ItemDesc != nil {
		desc := *r.ItemDesc
		if problem := checkText("item_desc", &desc, true, wxapp.MaxItemDesc); problem != "" {
			return workflows.ShipRequest{}, problem
		}
		out.ItemDesc = desc
	} else {
		out.ItemDesc = itemDesc(o.Items)
	}
	return out, ""
}

// packages checks the packages of the shipment: an express shipment has
// one to fifteen, each with WeChat's carrier code and a tracking number
// (SF Express also needs a phone: the receiver's, or consignor_phone);
// other shipments have none.
func (r *shipRequest) packages(o store.Order, out *workflows.ShipRequest) string {
	if r.LogisticsType != workflows.LogisticsExpress {
		if len(r.Packages) > 0 {
			return "packages: only an express shipment has packages"
		}
		return ""
	}
	switch n := len(r.Packages); {
	case n == 0:
		return "packages: an express shipment needs at least one package {express_company, tracking_no}"
	case n > wxapp.MaxShippingList:
		return fmt.Sprintf("packages: at most %d per shipment (WeChat's limit), got %d", wxapp.MaxShippingList, n)
	}
	seen := map[string]bool{}
	for i, p := range r.Packages {
		// Upper case: "sf" must be checked (and sent) as the SF WeChat knows.
		p.ExpressCompany, p.TrackingNo = strings.ToUpper(strings.TrimSpace(p.ExpressCompany)), strings.TrimSpace(p.TrackingNo)
		switch {
		case !expressCompany.MatchString(p.ExpressCompany):
			return fmt.Sprintf("packages[%d].express_company must be WeChat's carrier code (SF, YTO, ZTO, …)", i)
		case p.TrackingNo == "" || !validTrackingNo(p.TrackingNo):
			return fmt.Sprintf("packages[%d].tracking_no must be 1 to %d letters, digits, '-' or '_'", i, maxTrackingNo)
		case seen[p.TrackingNo]:
			return fmt.Sprintf("packages[%d].tracking_no %s is listed twice", i, p.TrackingNo)
		case p.ExpressCompany == "SF" && o.ShipTo.Phone == "" && out.ConsignorPhone == "":
			return fmt.Sprintf("packages[%d].express_company: SF Express needs a phone, and order %s has no shipping_address.phone: give consignor_phone", i, o.OrderNo)
		}
		seen[p.TrackingNo] = true
		out.Packages = append(out.Packages, p)
	}
	out.TrackingNo = out.Packages[0].TrackingNo
	return ""
}

// itemDesc is what WeChat shows the buyer of the shipment when the shop
// says nothing: the items and their quantities, cut to WeChat's 120
// characters.
func itemDesc(items []store.OrderItem) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		parts = append(parts, fmt.Sprintf("%s ×%d", it.Name, it.Quantity))
	}
	return wxapp.CutChars(strings.Join(parts, ", "), wxapp.MaxItemDesc)
}

func validTrackingNo(s string) bool {
	return len(s) <= maxTrackingNo && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_')
	})
}

// adminShipOrder marks a PAID order SHIPPED; the workflow reports the
// shipment to WeChat.
func (s *server) adminShipOrder(c *gin.Context) {
	var req shipRequest
	if !decodeOptionalJSON(c, &req) {
		return
	}
	o, ok := s.adminOrder(c)
	if !ok {
		return
	}
	ship, problem := req.shipment(o)
	if problem != "" {
		badRequest(c, problem)
		return
	}
	s.runAction(c, actShip, o, ship)
}

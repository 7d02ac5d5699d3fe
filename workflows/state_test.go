package workflows

import (
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
)

// The workflows' durable state is plain data: every field, however deep,
// exported and named in JSON, and nothing a payload cannot carry (funcs,
// channels, interfaces). That is what lets a run hand it on as is.
func TestDurableStateIsPlainData(t *testing.T) {
	for _, v := range []any{OrderState{}, StrayState{}} {
		checkPlain(t, reflect.TypeOf(v), reflect.TypeOf(v).Name(), map[reflect.Type]bool{})
	}
}

func checkPlain(t *testing.T, typ reflect.Type, path string, seen map[reflect.Type]bool) {
	t.Helper()
	if typ == reflect.TypeOf(time.Time{}) || seen[typ] {
		return
	}
	seen[typ] = true
	switch typ.Kind() {
	case reflect.Func, reflect.Chan, reflect.Interface, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		t.Errorf("%s is a %s: not plain data", path, typ.Kind())
	case reflect.Pointer, reflect.Slice, reflect.Array:
		checkPlain(t, typ.Elem(), path+"[]", seen)
	case reflect.Map:
		if typ.Key().Kind() != reflect.String {
			t.Errorf("%s has %s keys: JSON wants strings", path, typ.Key())
		}
		checkPlain(t, typ.Elem(), path+"[key]", seen)
	case reflect.Struct:
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch {
			case !f.IsExported():
				t.Errorf("%s.%s is not exported", path, f.Name)
			case f.Tag.Get("json") == "":
				t.Errorf("%s.%s has no json tag", path, f.Name)
			}
			checkPlain(t, f.Type, path+"."+f.Name, seen)
		}
	}
}

// A state with every field set comes back the same through the data
// converter a workflow's arguments go through.
func TestDurableStateSurvivesAPayloadRoundTrip(t *testing.T) {
	for _, v := range []any{&OrderState{}, &StrayState{}} {
		fill(reflect.ValueOf(v).Elem(), map[reflect.Type]bool{})
		payload, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem())
		if err := converter.GetDefaultDataConverter().FromPayload(payload, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Interface(), v) {
			t.Errorf("%T changed on the way:\n got %+v\nwant %+v", v, back.Elem().Interface(), reflect.ValueOf(v).Elem().Interface())
		}
	}
}

// fill sets every field of v, however deep, to a value that is not its
// zero — but a pointer back to a type being filled (OrderInput.Continued
// is an OrderState) stays nil, or it would never end.
func fill(v reflect.Value, filling map[reflect.Type]bool) {
	if !v.CanSet() {
		return // not plain data: TestDurableStateIsPlainData says so
	}
	if filling[v.Type()] {
		return
	}
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Pointer:
		if filling[v.Type().Elem()] {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), filling)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), filling)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, filling)
		fill(e, filling)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		filling[v.Type()] = true
		defer delete(filling, v.Type())
		for i := range v.NumField() {
			fill(v.Field(i), filling)
		}
	}
}

package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

type productJSON struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	PriceFen int64  `json:"price_fen"`
	Stock    int64  `json:"stock"`
}

func (s *server) listProducts(c *gin.Context) {
	ps, err := s.Store.ListProducts(c.Request.Context())
	if err != nil {
		internalError(c, err)
		return
	}
	out := make([]productJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, productJSON{ID: p.ID, Name: p.Name, PriceFen: p.PriceFen, Stock: p.Stock})
	}
	c.JSON(http.StatusOK, gin.H{"products": out})
}
